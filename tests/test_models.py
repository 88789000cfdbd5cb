"""Model references, the embedded default, GGUF conversion cache and the tiny test models."""

from __future__ import annotations

import json

import pytest

from sftlab.cli.main import main
from sftlab.errors import ModelError
from sftlab.models import load_model, load_tokenizer, resolve_model


def test_embedded_model_resolves_to_cached_safetensors():
    resolved = resolve_model("smollm2-135m-instruct")
    assert resolved.kind == "embedded"
    from pathlib import Path

    folder = Path(resolved.path)
    assert (folder / "model.safetensors").is_file()
    assert not list(folder.glob("*.bin"))
    assert (folder / "chat_template.jinja").is_file() or "chat_template" in (
        folder / "tokenizer_config.json"
    ).read_text()


def test_tokenizer_has_chatml_template(tokenizer):
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert "<|im_start|>user\nhi<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n")
    assert tokenizer.pad_token is not None


def test_tiny_model_folder_loads(tiny_model_dir):
    model = load_model(str(tiny_model_dir), device="cpu")
    tok = load_tokenizer(str(tiny_model_dir))
    assert sum(p.numel() for p in model.parameters()) < 1_000_000
    assert model.config.vocab_size == len(tok)


def test_model_info_cli_on_folder(tiny_model_dir, capsys):
    assert main(["model", "info", str(tiny_model_dir), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["architecture"] == "LlamaForCausalLM"
    assert info["chat_template"] is True
    assert info["layers"] == 2


@pytest.mark.parametrize(
    "reference, fragment",
    [
        ("no-such-model", "unknown model 'no-such-model'"),
        ("./missing/folder", "model path not found"),
        ("missing.gguf", "GGUF file not found"),
    ],
)
def test_bad_references_are_one_line_errors(reference, fragment):
    with pytest.raises(ModelError, match=fragment):
        resolve_model(reference)


def test_uncached_hub_id_offline_is_clear(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(["model", "info", "nobody-here/not-a-cached-model"])
    err = capsys.readouterr().err
    assert code == 1
    assert "not in the local Hugging Face cache" in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_embedded_model_info_and_generation(capsys):
    assert main(["model", "info", "smollm2-135m-instruct", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert abs(info["parameters"] - 134.5e6) < 0.1e6
    assert info["chat_template"] is True
    assert (
        main(
            ["generate", "smollm2-135m-instruct", "What is the capital of France?", "--max-new-tokens", "24"]
        )
        == 0
    )
    assert "Paris" in capsys.readouterr().out


# ---- tokenizer-only references: embedded Qwen3 / Llama 3.2 tokenizers and folders without config.json ----


@pytest.mark.parametrize(
    ("name", "eos", "has_template"),
    [("qwen3-tokenizer", "<|im_end|>", True), ("llama3.2-tokenizer", "<|end_of_text|>", False)],
)
def test_embedded_tokenizers_resolve_and_load(name, eos, has_template):
    resolved = resolve_model(name)
    assert resolved.kind == "tokenizer" and not resolved.has_weights
    tok = load_tokenizer(resolved)
    assert tok.eos_token == eos and tok.pad_token is not None
    assert bool(tok.chat_template) == has_template


@pytest.fixture(scope="module")
def tokenizer_folder(tmp_path_factory, qwen3_tokenizer):
    folder = tmp_path_factory.mktemp("qwen3-tokenizer-only")
    qwen3_tokenizer.save_pretrained(folder)
    assert not (folder / "config.json").exists()
    return folder


def test_tokenizer_only_folder_resolves_and_refuses_weights(tokenizer_folder):
    resolved = resolve_model(str(tokenizer_folder))
    assert resolved.kind == "tokenizer"
    assert "<think>" in load_tokenizer(resolved).chat_template
    with pytest.raises(ModelError) as err:
        load_model(resolved)
    message = str(err.value)
    assert "\n" not in message and str(tokenizer_folder) in message and "without weights" in message


def test_folder_without_model_or_tokenizer_files_is_an_error(tmp_path):
    with pytest.raises(ModelError, match="not a Hugging Face model or tokenizer folder"):
        resolve_model(str(tmp_path))


def test_model_info_of_a_tokenizer(capsys):
    assert main(["model", "info", "qwen3-tokenizer", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "tokenizer" and info["weights"] is False and info["chat_template"] is True


def _chat_file(path):
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Question {i}?"},
                {"role": "assistant", "content": f"Answer {i}."},
            ]
        }
        for i in range(4)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_tokenizer_only_reference_previews_inspects_and_doctors(tokenizer_folder, tmp_path, capsys):
    data = _chat_file(tmp_path / "chat.jsonl")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"model: {{name: {tokenizer_folder}}}\ndata: {{sources: [{{path: {data}}}]}}\n")
    assert main(["data", "preview", str(recipe), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and next(iter(report["sources"].values()))["rendered"] == 4
    assert main(["data", "inspect", str(data), "--tokenizer", "qwen3-tokenizer", "--json"]) == 0
    assert "tokens" in capsys.readouterr().out
    assert main(["doctor", str(recipe), "--json"]) == 0
    findings = {f["code"]: f for f in json.loads(capsys.readouterr().out)}
    assert findings["no_weights"]["severity"] == "warning"


@pytest.mark.parametrize("command", ["train", "generate"])
def test_commands_that_need_weights_fail_in_one_line(command, tokenizer_folder, tmp_path, capsys):
    if command == "train":
        data = _chat_file(tmp_path / "chat.jsonl")
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(
            f"output_dir: {tmp_path / 'run'}\nmodel: {{name: {tokenizer_folder}}}\n"
            f"data: {{sources: [{{path: {data}}}]}}\ntraining: {{max_steps: 1}}\n"
        )
        args = ["train", str(recipe), "--skip-doctor"]
    else:
        args = ["generate", "qwen3-tokenizer", "Hi"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "without weights" in err
    assert ("qwen3-tokenizer" if command == "generate" else str(tokenizer_folder)) in err
