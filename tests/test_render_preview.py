"""Mask preview: per-source checks, highlighted samples, HTML, and the ``sftlab data preview`` command."""

from __future__ import annotations

import copy
import json

from sftlab.data.record import Conversation, Meta, Turn
from sftlab.recipe.sections.render import RenderSection
from sftlab.render import resolve_template
from sftlab.render.preview import preview_report, problems, save_preview_html


def conv(i: int, source: str = "chat", weight=None) -> Conversation:
    return Conversation(
        turns=[Turn("user", f"Question {i}?"), Turn("assistant", f"Answer {i}.", weight=weight)],
        meta=Meta(id=f"{source}-{i}", source=source),
    )


def test_preview_report_counts_and_checks(tokenizer):
    records = [conv(i) for i in range(3)] + [conv(9, source="other", weight=0)]
    report = preview_report(records, tokenizer, RenderSection(), n=2)
    chat, other = report["sources"]["chat"], report["sources"]["other"]
    assert chat["rendered"] == 3 and chat["eot_trained"] and chat["prompt_is_prefix"]
    assert 0 < chat["trained_token_share"] < 0.5
    assert other["no_trained_tokens"] == 1 and other["no_trained_tokens_ids"] == ["other-9"]
    assert not report["ok"] and "other-9" in problems(report)[0]
    first = report["samples"][0]
    trained_text = "".join(text for text, trained in first["spans"] if trained)
    assert trained_text == "Answer 0.<|im_end|>"


def test_preview_flags_template_without_end_of_turn(tokenizer, tmp_path):
    template = tmp_path / "no_eot.jinja"
    template.write_text(
        "{% for m in messages %}{{ m['role'] }}:\n{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:\n{% endif %}"
    )
    tok = resolve_template(copy.deepcopy(tokenizer), str(template))
    report = preview_report([conv(1)], tok, RenderSection(template=str(template)))
    assert report["sources"]["chat"]["errors"] == 0, report
    assert report["sources"]["chat"]["eot_missing_ids"] == ["chat-1"]
    assert not report["ok"]


def test_preview_html_marks_trained_tokens(tokenizer, tmp_path):
    report = preview_report([conv(1)], tokenizer, RenderSection())
    path = save_preview_html(report, tmp_path / "preview.html")
    page = path.read_text()
    assert '<mark class="t">Answer 1.&lt;|im_end|&gt;</mark>' in page
    assert "every check passed" in page


def test_data_preview_cli(tmp_path, capsys):
    from sftlab.cli.main import main

    data = tmp_path / "chat.sftlab.jsonl"
    data.write_text("".join(json.dumps(conv(i).to_dict()) + "\n" for i in range(4)))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"data:\n  sources:\n    - path: {data}\n      format: sftlab\n")
    html = tmp_path / "p.html"
    code = main(["data", "preview", str(recipe), "--json", "--html", str(html), "--n", "2"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    (source,) = report["sources"].values()
    assert source["records"] == 4 and source["eot_trained"] and source["prompt_is_prefix"]
    assert len(report["samples"]) == 2 and html.is_file()
    # a broken setting makes the command fail loudly
    code = main(["data", "preview", str(recipe), "render.template=llama3", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and not report["ok"]
    assert "not prefix-stable" in next(iter(report["sources"].values()))["error_messages"][0]


def _tool_records():
    from pathlib import Path

    from sftlab.data.io import read_records

    path = Path(__file__).parent.parent / "examples" / "data" / "tool_calls.jsonl"
    return list(read_records(path))[:4]


def test_preview_flags_a_template_that_drops_tool_calls(tokenizer):
    """SmolLM2's own template renders a tool-calling turn as an empty assistant turn: that must be loud."""
    records = _tool_records()
    own = preview_report(records, copy.deepcopy(tokenizer), RenderSection())
    (stats,) = own["sources"].values()
    assert stats["tools_dropped"] == len(records) and not own["ok"]
    assert "tool calls or tool schemas" in problems(own)[0]
    tok = resolve_template(copy.deepcopy(tokenizer), "chatml")
    fixed = preview_report(records, tok, RenderSection(template="chatml"))
    (stats,) = fixed["sources"].values()
    assert stats["tools_dropped"] == 0 and fixed["ok"], problems(fixed)


def test_eval_prompt_offers_the_same_tools_as_training(tokenizer):
    """The generation prompt of an eval sample is a token prefix of the training rendering, tools included."""
    from sftlab.data.record import Conversation
    from sftlab.evaluate.generation import encode_chat
    from sftlab.evaluate.samples import to_samples
    from sftlab.render import render_record

    tok = resolve_template(copy.deepcopy(tokenizer), "chatml")
    record = _tool_records()[0]
    last = max(i for i, t in enumerate(record.turns) if t.role == "assistant")
    first_call = Conversation(turns=record.turns[: last - 1], system=record.system, tools=record.tools)
    sample = to_samples([first_call])[0]  # ends at the assistant turn that calls the tool
    assert sample.tools == record.tools
    prompt = encode_chat(tok, sample.messages, sample.tools)
    assert "get_weather" in tok.decode(prompt)
    rendered = render_record(first_call, tok, RenderSection(template="chatml"))
    assert rendered.input_ids[: len(prompt)] == prompt
    assert encode_chat(tok, sample.messages) != prompt  # without the tools, the prompt differs


IDENTITY = [  # the shape of LLaMA-Factory's data/identity.json: placeholders the user is meant to fill
    {
        "instruction": "hi",
        "input": "",
        "output": "Hello! I am {{name}}, an AI assistant developed by {{author}}.",
    },
    {
        "instruction": "Who are you?",
        "input": "",
        "output": "I am {{name}}, an AI assistant developed by {{author}}.",
    },
    {"instruction": "What is 2+2?", "input": "", "output": "4."},
]


def test_preview_warns_about_unfilled_template_variables_in_trained_text(tokenizer, tmp_path):
    from sftlab.data.io import read_records
    from sftlab.render.preview import warnings

    path = tmp_path / "identity.json"
    path.write_text(json.dumps(IDENTITY))
    records = list(read_records(path))
    report = preview_report(records, tokenizer, RenderSection())
    (stats,) = report["sources"].values()
    assert stats["template_variables"] == 2 and stats["variable_names"] == ["name", "author"]
    assert report["ok"]  # a warning: the fix is in the data, and the preview still shows it
    (line,) = warnings(report)
    assert "2 records train unfilled template variables {{name}}, {{author}}" in line
    assert "set data.sources[i].substitute: {name: ..., author: ...}" in line
    # a placeholder only in the prompt is not trained, so not reported
    prompt_only = Conversation(
        turns=[Turn("user", "Call me {{user}}."), Turn("assistant", "Sure.")], meta=Meta(id="p", source="s")
    )
    assert not warnings(preview_report([prompt_only], tokenizer, RenderSection()))


def test_data_preview_cli_prints_mode_and_warnings(tmp_path, capsys):
    from sftlab.cli.main import main

    path = tmp_path / "identity.json"
    path.write_text(json.dumps(IDENTITY))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"data:\n  sources:\n    - path: {path}\n")
    assert main(["data", "preview", str(recipe), "--n", "1"]) == 0
    printed = capsys.readouterr().out
    assert "history_rewrite per_turn: 0 of 3 records rendered turn by turn" in printed
    assert "warning:" in printed and "{{name}}" in printed and "substitute" in printed


def test_problems_and_warnings_read_a_preview_json_written_before_the_new_checks():
    from sftlab.render.preview import warnings

    old = {
        "sources": {"chat": {"no_trained_tokens": 0, "eot_missing": 1, "eot_missing_ids": ["x"], "errors": 0}}
    }
    old["sources"]["chat"].update(prompt_not_prefix=0, tools_dropped=0)
    assert problems(old) == [
        "chat: 1 records where an assistant turn does not end with a trained special end-of-turn token (e.g. x)"
    ]
    assert warnings(old) == []


def test_identity_json_warns_until_the_source_substitutes_its_variables(tmp_path, capsys):
    """LLaMA-Factory's own identity.json: the preview names the fix, and the fix silences it."""
    from pathlib import Path

    from sftlab.cli.main import main

    identity = Path(__file__).parent / "data" / "llamafactory" / "identity.json"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"data:\n  sources:\n    - path: {identity}\n")
    assert main(["data", "preview", str(recipe), "--json"]) == 0
    (stats,) = json.loads(capsys.readouterr().out)["sources"].values()
    assert stats["template_variables"] == stats["records"] > 0 and stats["variable_names"] == [
        "name",
        "author",
    ]
    recipe.write_text(
        f"data:\n  sources:\n    - path: {identity}\n      substitute: {{name: Ledger, author: Acme}}\n"
    )
    assert main(["data", "preview", str(recipe), "--json"]) == 0
    (stats,) = json.loads(capsys.readouterr().out)["sources"].values()
    assert stats["template_variables"] == 0
