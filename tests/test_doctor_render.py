"""``doctor`` on rendering: unfilled template variables, the thinking mode, tokenizer-only references."""

from __future__ import annotations

import json

from sftlab.data.record import Conversation, Meta, Turn
from sftlab.recipe import load_recipe
from sftlab.train.doctor import doctor


def _conv(i, answer, source="identity", reasoning=None):
    return Conversation(
        turns=[Turn("user", f"q{i}"), Turn("assistant", answer, reasoning=reasoning)],
        meta=Meta(id=f"{source}-{i}", source=source),
    )


def _findings(overrides, records, tokenizer):
    return {f.code: f for f in doctor(load_recipe(None, overrides), records, tokenizer=tokenizer)}


def test_doctor_warns_about_template_variables_and_names_the_source(tokenizer):
    sources = "data.sources=[{path: chat.jsonl, name: chat}, {path: identity.json, name: identity}]"
    records = [
        _conv(0, "I am {{name}}, made by {{ author }}."),
        _conv(1, "Hello."),
        _conv(2, "Hi", source="chat"),
    ]
    found = _findings([sources], records, tokenizer)
    f = found["template_variables"]
    assert f.severity == "warning" and "1 records" in f.why and "{{name}}, {{author}}" in f.why
    assert f.fix == "set data.sources[1].substitute: {name: ..., author: ...}"
    assert "template_variables" not in _findings([sources], records[1:], tokenizer)


def test_doctor_flags_reasoning_under_thinking_off(qwen3_tokenizer):
    import copy

    records = [_conv(i, "4.", reasoning="two and two") for i in range(3)]
    off = ["render.template_kwargs={enable_thinking: false}"]
    found = _findings(off, records, copy.deepcopy(qwen3_tokenizer))
    assert found["thinking_mismatch"].severity == "error" and "3 records" in found["thinking_mismatch"].why
    assert "render_fails" not in found  # one cause, reported once
    assert "thinking_mismatch" not in _findings([], records, copy.deepcopy(qwen3_tokenizer))


def test_doctor_multi_turn_qwen3_renders_per_turn(qwen3_tokenizer):
    import copy

    conv = Conversation(
        turns=[Turn("user", "a"), Turn("assistant", "b"), Turn("user", "c"), Turn("assistant", "d")],
        meta=Meta(id="m"),
    )
    found = _findings([], [conv] * 3, copy.deepcopy(qwen3_tokenizer))
    assert "render_fails" not in found and "eos_untrained" not in found


def test_doctor_on_a_tokenizer_only_reference(tmp_path, capsys):
    from sftlab.cli.main import main

    data = tmp_path / "d.jsonl"
    data.write_text(
        json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    )
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"model: {{name: llama3.2-tokenizer}}\ndata: {{sources: [{{path: {data}}}]}}\nrender: {{template: llama3}}\n"
    )
    assert main(["doctor", str(recipe), "--json"]) == 0
    codes = {f["code"] for f in json.loads(capsys.readouterr().out)}
    assert "no_weights" in codes and "render_fails" not in codes and "eos_untrained" not in codes
