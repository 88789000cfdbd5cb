"""The bad-input table: every command, careless input, one clear line.

Each row is a command line run through the CLI entry point in this process, in a
folder holding good and broken inputs. Every row must: exit with the given code,
print one line starting with ``error:`` as the last thing on stderr, name what is wrong
(the file, line, key or option: the row's needle), print no traceback, and leave
no file at a final output name. (``test_bad_inputs.py`` and ``test_cli_usage.py``
run a few of the same through a fresh process, as the console script.)
"""

from __future__ import annotations

import json
import socket

import pytest

from sftlab.cli.main import main

GOOD_ROWS = [{"instruction": f"Name colour {i}.", "output": f"Colour {i} is teal."} for i in range(6)]


@pytest.fixture(scope="module")
def place(tmp_path_factory, tiny_model_dir):
    """A folder with good and broken inputs; ``{x}`` in a row's arguments is replaced by its path."""
    d = tmp_path_factory.mktemp("bad")
    (d / "good.jsonl").write_text("".join(json.dumps(r) + "\n" for r in GOOD_ROWS))
    (d / "tools.jsonl").write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "weather?"},
                    {
                        "role": "assistant",
                        "tool_calls": [{"type": "function", "function": {"name": "w", "arguments": "{}"}}],
                    },
                    {"role": "tool", "content": "sun"},
                    {"role": "assistant", "content": "Sunny."},
                ]
            }
        )
        + "\n"
    )
    (d / "broken.jsonl").write_text('{"instruction": "a", "output": "b"}\n{not json\n')
    (d / "a-file").write_text("not a folder")
    (d / "info").mkdir()
    (d / "info" / "dataset_info.json").write_text(json.dumps({"demo": {"file_name": "../good.jsonl"}}))
    (d / "text.gguf").write_text("hello")
    (d / "empty-folder").mkdir()
    (d / "notes").mkdir()
    (d / "notes" / "mine.txt").write_text("keep")
    (d / "tok").mkdir()
    recipes = {
        "good.yaml": f"output_dir: {d / 'run'}\nmodel: {{name: {tiny_model_dir}}}\ndata: {{sources: [{{path: {d / 'good.jsonl'}}}]}}\n",
        "typo.yaml": "training:\n  lrr: 1e-4\n",
        "type.yaml": "training:\n  epochs: many\n",
        "dup.yaml": "name: a\nname: b\n",
        "yaml.yaml": "training: [unclosed\n",
        "nosrc.yaml": f"output_dir: {d / 'run2'}\ndata: {{sources: []}}\n",
        "gone.yaml": f"output_dir: {d / 'run3'}\ndata: {{sources: [{{path: {d / 'gone.jsonl'}}}]}}\n",
        "step.yaml": f"data: {{sources: [{{path: {d / 'good.jsonl'}}}]}}\ncuration: {{steps: [{{type: dedupe}}]}}\n",
        "stepkey.yaml": f"data: {{sources: [{{path: {d / 'good.jsonl'}}}]}}\ncuration: {{steps: [{{type: minhash_dedup, treshold: 0.5}}]}}\n",
        "metric.yaml": "evaluation: {custom_metric: 'os:system'}\n",
        "lf.yaml": f"data: {{sources: [{{path: {d / 'info'}, dataset: nope}}]}}\n",
        "tokonly.yaml": f"output_dir: {d / 'run4'}\nmodel: {{name: qwen3-tokenizer}}\ndata: {{sources: [{{path: {d / 'good.jsonl'}}}]}}\n",
    }
    for name, text in recipes.items():
        (d / name).write_text(text)
    (d / "u16.yaml").write_bytes("name: x\n".encode("utf-16"))
    (d / "bin.yaml").write_bytes(bytes(range(256)))
    return d


# (arguments, exit code, needle in the one line, output path that must not appear)
ROWS = [
    # recipes
    (["recipe", "check", "{d}/none.yaml"], 2, "file not found", None),
    (
        ["recipe", "check", "{d}/typo.yaml"],
        2,
        "typo.yaml:2: training.lrr: unknown key; did you mean 'lr'?",
        None,
    ),
    (["recipe", "check", "{d}/type.yaml"], 2, "type.yaml:2: training.epochs", None),
    (["recipe", "check", "{d}/dup.yaml"], 2, "dup.yaml:2: name: duplicate key", None),
    (["recipe", "check", "{d}/yaml.yaml"], 2, "invalid YAML", None),
    (["recipe", "check", "{d}/u16.yaml"], 2, "not UTF-8 text", None),
    (["recipe", "check", "{d}/bin.yaml"], 2, "a binary file", None),
    (["recipe", "check", "{d}/good.yaml", "training.lr"], 2, "expected KEY.PATH=VALUE", None),
    (
        ["recipe", "check", "{d}/good.yaml", "training.epochz=2"],
        2,
        "override: training.epochz: unknown key",
        None,
    ),
    (["recipe", "check", "{d}/good.yaml", "training={lr: 0}"], 2, "override training: training.lr", None),
    (["recipe", "check", "{d}/good.yaml", "data.sources.5.path=x"], 2, "index 5 is out of range", None),
    (["recipe", "check", "{d}/gone.yaml"], 2, "data.sources.0.path", None),
    (["recipe", "check", "{d}/metric.yaml"], 2, "evaluation.custom_metric", None),
    (["recipe", "check", "{d}/lf.yaml"], 2, "no dataset 'nope'", None),
    (["recipe", "show", "{d}/typo.yaml"], 2, "training.lrr", None),
    (["run", "{d}/good.yaml", "--from", "train", "--until", "curate"], 1, "comes before", None),
    (["run", "{d}/good.yaml", "--until", "deploy"], 1, "--until deploy: unknown stage", None),
    (["run", "{d}/nosrc.yaml"], 1, "data.sources is empty", "{d}/run2/curation"),
    # data convert
    (
        ["data", "convert", "{d}/none.jsonl", "{d}/o1.jsonl", "--to", "messages"],
        1,
        "none.jsonl",
        "{d}/o1.jsonl",
    ),
    (["data", "convert", "{d}/good.jsonl", "{d}/o2.jsonl", "--to", "yaml"], 1, "yaml", "{d}/o2.jsonl"),
    (
        ["data", "convert", "{d}/good.jsonl", "{d}/o3.jsonl", "--to", "messages", "--from", "csvish"],
        1,
        "csvish",
        "{d}/o3.jsonl",
    ),
    (
        ["data", "convert", "{d}/good.jsonl", "{d}/o4.jsonl", "--to", "messages", "--on-error", "maybe"],
        1,
        "--on-error",
        "{d}/o4.jsonl",
    ),
    (
        ["data", "convert", "{d}/good.jsonl", "{d}/o5.jsonl", "--to", "messages", "--map", "prompt"],
        1,
        "--map 'prompt'",
        "{d}/o5.jsonl",
    ),
    (
        ["data", "convert", "{d}/good.jsonl", "{d}/o6.jsonl", "--to", "messages", "--limit", "-3"],
        2,
        "'--limit'",
        "{d}/o6.jsonl",
    ),
    (["data", "convert", "{d}/good.jsonl", "{d}/a-file/o7.jsonl", "--to", "messages"], 1, "a-file", None),
    (
        ["data", "convert", "{d}/tools.jsonl", "{d}/o8.jsonl", "--to", "text"],
        1,
        "nothing to write as text",
        "{d}/o8.jsonl",
    ),
    (["data", "convert", "{d}/good.jsonl", "{d}/o9.txt", "--to", "text"], 1, "o9.txt", "{d}/o9.txt"),
    (
        ["data", "convert", "{d}/broken.jsonl", "{d}/o10.jsonl", "--to", "messages"],
        1,
        "broken.jsonl:2: malformed_json",
        "{d}/o10.jsonl",
    ),
    (["data", "convert", "{d}/info", "{d}/o11.jsonl", "--to", "messages"], 1, "dataset", "{d}/o11.jsonl"),
    (
        ["data", "convert", "{d}/info", "{d}/o12.jsonl", "--to", "messages", "--dataset", "demo2"],
        1,
        "no dataset 'demo2'",
        "{d}/o12.jsonl",
    ),
    (
        ["data", "convert", "{d}/empty-folder", "{d}/o13.jsonl", "--to", "messages"],
        1,
        "empty-folder",
        "{d}/o13.jsonl",
    ),
    # data inspect / curate / preview
    (["data", "inspect", "{d}/none.jsonl"], 1, "none.jsonl", None),
    (["data", "inspect", "{d}/text.gguf"], 1, "text.gguf: unknown file type", None),
    (["data", "inspect", "{d}/good.jsonl", "--tokenizer", "no-such-model-xyz"], 1, "no-such-model-xyz", None),
    (["data", "curate", "{d}/nosrc.yaml"], 1, "data.sources is empty", None),
    (["data", "curate", "{d}/gone.yaml"], 1, "gone.jsonl", "{d}/run3/curation"),
    (["data", "curate", "{d}/step.yaml"], 2, "dedupe", None),
    (["data", "curate", "{d}/stepkey.yaml"], 2, "treshold", None),
    (
        ["data", "curate", "{d}/good.yaml", "--out", "{d}/notes"],
        1,
        "holds files curation did not write",
        None,
    ),
    (["data", "curate", "{d}/good.yaml", "--out", "{d}/a-file/c"], 1, "a-file", None),
    (["data", "preview", "{d}/good.yaml", "--n", "-1"], 2, "'--n'", None),
    (["data", "preview", "{d}/good.yaml", "--limit", "0"], 2, "'--limit'", None),
    (["data", "preview", "{d}/good.yaml", "model.name=no-such-model-xyz"], 1, "no-such-model-xyz", None),
    # models and generation
    (["model", "info", "{d}/none.gguf"], 1, "none.gguf", None),
    (["model", "info", "{d}/text.gguf"], 1, "not a GGUF file", None),
    (["model", "info", "{d}/empty-folder"], 1, "empty-folder", None),
    (["model", "info", "no-such-model-xyz"], 1, "no-such-model-xyz", None),
    (["generate", "{m}", "hi", "--max-new-tokens", "-4"], 1, "--max-new-tokens", None),
    (["generate", "{m}", "hi", "--temperature", "-1"], 1, "--temperature", None),
    (["generate", "qwen3-tokenizer", "hi"], 1, "a tokenizer without weights", None),
    (["chat", "{m}", "--top-p", "0"], 1, "--top-p", None),
    (["export", "{m}", "--out", "{d}/e1", "--dtype", "int3"], 1, "--dtype int3", "{d}/e1"),
    (["export", "{d}/none-run", "--out", "{d}/e2"], 1, "none-run", "{d}/e2"),
    (["export", "{m}", "--out", "{d}/e3", "--adapter-only"], 1, "--adapter-only", "{d}/e3"),
    (["serve", "{m}", "--port", "99999"], 1, "--port 99999", None),
    (["serve", "{m}", "--host", "no.such.host.invalid"], 1, "--host no.such.host.invalid", None),
    (["serve", "{m}", "--port", "{busy}"], 1, "cannot listen on", None),
    (["serve", "{m}", "--max-batch", "0"], 2, "'--max-batch'", None),
    (["estimate", "{m}", "--zero", "4"], 2, "'--zero'", None),
    # training and evaluation
    (["train", "{d}/none.yaml"], 2, "file not found", None),
    (["train", "{d}/nosrc.yaml"], 1, "data.sources is empty", "{d}/run2/final"),
    (["train", "{d}/tokonly.yaml", "--skip-doctor"], 1, "a tokenizer without weights", "{d}/run4/final"),
    (["doctor", "{d}/typo.yaml"], 2, "training.lrr", None),
    (["eval", "{d}/typo.yaml"], 2, "training.lrr", None),
    # usage
    (["nosuch"], 2, "No such command 'nosuch'", None),
    (["data", "curate"], 2, "Missing argument", None),
    (["recipe", "check", "{d}/good.yaml", "--bogus"], 2, "No such option: --bogus", None),
]


@pytest.fixture(scope="module")
def busy_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_the_table_is_big_enough():
    assert len(ROWS) >= 60
    assert len({tuple(r[0][:2]) for r in ROWS}) >= 20  # spread over the commands


@pytest.mark.parametrize(("args", "code", "needle", "absent"), ROWS, ids=[" ".join(r[0][:3]) for r in ROWS])
def test_bad_input(place, tiny_model_dir, busy_port, capsys, args, code, needle, absent):
    fill = {"{d}": str(place), "{m}": str(tiny_model_dir), "{busy}": str(busy_port)}

    def sub(text: str) -> str:
        for key, value in fill.items():
            text = text.replace(key, value)
        return text

    argv = [sub(a) for a in args]
    assert main(argv) == code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert "Traceback" not in captured.err + captured.out
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1, captured.err[-800:]  # one error line ...
    first = errors[0]
    # ... the last thing printed (a recipe's several problems follow it as a list; `run` prints its stage first)
    assert all(line.startswith("  - ") for line in lines[first + 1 :]), captured.err[-800:]
    assert sub(needle) in captured.err, captured.err[-800:]
    if absent:
        from pathlib import Path

        assert not Path(sub(absent)).exists()
