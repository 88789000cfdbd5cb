"""Reasoning models on Qwen3's real template: history rewriting, template kwargs, think blocks, thinking mode."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from sftlab.data.io import read_records
from sftlab.data.record import Conversation, Meta, Turn
from sftlab.recipe.sections.render import RenderSection
from sftlab.render import IGNORE_INDEX, NotPrefixStableError, resolve_template, tokenize_records
from sftlab.render.preview import preview_report, problems, rendering_summary, warnings
from sftlab.render.sample import render_conversation, render_samples

MULTITURN = Path(__file__).parent.parent / "examples" / "data" / "sharegpt_multiturn.jsonl"
NO_THINKING = {"enable_thinking": False}


def trained(tok, sample) -> str:
    return tok.decode([t for t in sample.labels if t != IGNORE_INDEX])


def reasoned(rid: str = "r") -> Conversation:
    return Conversation(
        turns=[
            Turn("user", "2+2?"),
            Turn("assistant", "4.", reasoning="Two and two make four."),
            Turn("user", "And 3+3?"),
            Turn("assistant", "6.", reasoning="Three and three make six."),
        ],
        meta=Meta(id=rid, source="math"),
    )


def test_multi_turn_qwen3_records_render_one_sample_per_turn(qwen3_tokenizer):
    """Every multi-turn record used to fail NotPrefixStableError; now each assistant turn is a sample."""
    records = list(read_records(MULTITURN))
    turns = sum(sum(t.role == "assistant" for t in r.turns) for r in records)
    multi = sum(sum(t.role == "assistant" for t in r.turns) > 1 for r in records)
    assert (len(records), multi, turns) == (24, 20, 44)
    old = preview_report(records, qwen3_tokenizer, RenderSection(history_rewrite="error"))
    (stats,) = old["sources"].values()
    assert stats["errors"] == multi and "render.history_rewrite: per_turn" in stats["error_messages"][0]
    report = preview_report(records, qwen3_tokenizer, RenderSection())
    (stats,) = report["sources"].values()
    assert report["ok"], problems(report)
    assert (stats["rendered"], stats["samples"], stats["rendered_per_turn"]) == (24, 44, 20)
    assert rendering_summary(report).startswith(
        "history_rewrite per_turn: 20 of 24 records rendered turn by turn"
    )
    last = preview_report(records, qwen3_tokenizer, RenderSection(history_rewrite="last_turn"))
    (stats,) = last["sources"].values()
    assert (stats["samples"], stats["untrained_turns"]) == (24, 20) and last["ok"]


def test_last_assistant_needs_no_history_rewrite(qwen3_tokenizer):
    tok = qwen3_tokenizer
    out = render_conversation(
        reasoned(), tok, RenderSection(train_on="last_assistant", history_rewrite="error")
    )
    (sample,) = out.samples
    assert out.mode == "whole"
    assert trained(tok, sample) == "<think>\nThree and three make six.\n</think>\n\n6.<|im_end|>"
    # the earlier turn is context, rendered as the template renders history at inference: without its reasoning
    assert "Two and two" not in tok.decode(
        sample.input_ids
    ) and "<|im_start|>assistant\n4.<|im_end|>" in tok.decode(sample.input_ids)


def test_reasoning_is_rendered_where_the_template_puts_it_and_can_be_masked(qwen3_tokenizer):
    tok = qwen3_tokenizer
    first, second = render_samples(reasoned(), tok, RenderSection())
    assert trained(tok, first) == "<think>\nTwo and two make four.\n</think>\n\n4.<|im_end|>"
    assert trained(tok, second) == "<think>\nThree and three make six.\n</think>\n\n6.<|im_end|>"
    masked = render_samples(reasoned(), tok, RenderSection(train_reasoning=False))
    assert [trained(tok, s) for s in masked] == ["4.<|im_end|>", "6.<|im_end|>"]
    assert "Three and three make six." in tok.decode(masked[1].input_ids)  # still the context of the answer
    with pytest.raises(NotPrefixStableError, match="render.history_rewrite"):
        render_samples(reasoned(), tok, RenderSection(history_rewrite="error"))


def test_inline_think_block_masked_on_chatml(tokenizer):
    conv = Conversation(turns=[Turn("user", "2+2?"), Turn("assistant", "4", reasoning="two and two")])
    sample = render_samples(conv, tokenizer, RenderSection(reasoning="inline", train_reasoning=False))[0]
    assert trained(tokenizer, sample) == "4<|im_end|>"
    assert "<think>two and two</think>" in tokenizer.decode(sample.input_ids)


def test_template_kwargs_reach_training_preview_and_inference(qwen3_tokenizer, tmp_path):
    from sftlab.evaluate.generation import encode_chat
    from sftlab.models import load_tokenizer
    from sftlab.models.generate import chat_inputs

    tok = resolve_template(copy.deepcopy(qwen3_tokenizer), "model", NO_THINKING)
    conv = Conversation(turns=[Turn("user", "Hi"), Turn("assistant", "Hello!")], meta=Meta(id="h"))
    out = render_conversation(conv, tok, RenderSection(template_kwargs=NO_THINKING))
    assert out.empty_think == 0 and trained(tok, out.samples[0]) == "Hello!<|im_end|>"
    # the template saved with the run carries the setting: generate, eval and serve need not know the recipe
    tok.save_pretrained(tmp_path)
    saved = load_tokenizer(str(tmp_path))
    messages = [{"role": "user", "content": "Hi"}]
    for ids in (chat_inputs(saved, messages)["input_ids"][0].tolist(), encode_chat(saved, messages)):
        assert saved.decode(ids).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
        assert out.samples[0].input_ids[: len(ids)] == ids
    # resolving again replaces the setting instead of stacking a second one
    again = resolve_template(copy.deepcopy(saved), "model", {"enable_thinking": True})
    assert again.chat_template.count("sftlab render.template_kwargs") == 1
    assert again.decode(encode_chat(again, messages)).endswith("<|im_start|>assistant\n")


def test_template_kwargs_keys_are_checked():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="tools"):
        RenderSection(template_kwargs={"tools": []})
    with pytest.raises(ValidationError, match="not an identifier"):
        RenderSection(template_kwargs={"enable-thinking": False})


def test_reasoning_with_thinking_off_fails_the_preview(qwen3_tokenizer):
    tok = resolve_template(copy.deepcopy(qwen3_tokenizer), "model", NO_THINKING)
    report = preview_report([reasoned("a"), reasoned("b")], tok, RenderSection(template_kwargs=NO_THINKING))
    (stats,) = report["sources"].values()
    assert report["thinking"] == "off" and not report["ok"]
    assert stats["thinking_mismatch_ids"] == ["a", "b"] and stats["errors"] == 0
    assert "thinking off" in problems(report)[0] and "render.reasoning: drop" in problems(report)[0]
    with pytest.raises(NotPrefixStableError, match="switches thinking off"):
        render_samples(reasoned(), tok, RenderSection(template_kwargs=NO_THINKING))
    dropped = preview_report([reasoned()], tok, RenderSection(template_kwargs=NO_THINKING, reasoning="drop"))
    assert dropped["ok"], problems(dropped)


def test_data_without_reasoning_under_thinking_mode_is_a_warning(qwen3_tokenizer):
    records = list(read_records(MULTITURN))[:3]
    on = preview_report(records, qwen3_tokenizer, RenderSection())
    assert on["ok"] and on["thinking"] == "on"
    (line,) = warnings(on)
    assert (
        "3 records" in line and "empty think block, not trained" in line and "enable_thinking: false" in line
    )
    tok = resolve_template(copy.deepcopy(qwen3_tokenizer), "model", NO_THINKING)
    off = preview_report(records, tok, RenderSection(template_kwargs=NO_THINKING))
    assert off["ok"] and not warnings(off)


def test_reasoning_the_template_drops_is_a_warning(tokenizer):
    report = preview_report([reasoned()], tokenizer, RenderSection())  # SmolLM2 ignores reasoning_content
    assert report["ok"]
    assert any("reasoning the chat template does not render" in w for w in warnings(report))


def test_tokenize_records_and_training_data_count_samples(qwen3_tokenizer, tmp_path):
    from sftlab.train.data import tokenize

    records = list(read_records(MULTITURN))
    data = tokenize_records(records, qwen3_tokenizer, RenderSection(), cache_dir=tmp_path)
    st = data.stats
    assert (st["records"], st["samples"], st["rendered_per_turn"]) == (24, 44, 20)
    assert [s.id for s in data.samples].count(records[0].meta.id) == 2
    again = tokenize_records(records, qwen3_tokenizer, RenderSection(), cache_dir=tmp_path)
    assert again.from_cache and len(again.samples) == 44
    other = tokenize_records(
        records, qwen3_tokenizer, RenderSection(history_rewrite="last_turn"), cache_dir=tmp_path
    )
    assert not other.from_cache and other.stats["samples"] == 24
    samples, stats = tokenize(records, qwen3_tokenizer, RenderSection(), tmp_path)
    assert len(samples) == 44 and stats["samples"] == 44
