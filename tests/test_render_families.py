"""Masks, end-of-turn and prefix checks on three real model families with their real tokenizers.

SmolLM2 (ChatML, embedded model), Qwen3 (its own template: tools, <think>, rewrites history) and
Llama 3.2 (the built-in llama3 template; its tokenizer ships none). Every assertion names the exact
trained text: assistant bodies and their end-of-turn token, never the prompt.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from sftlab.data.io import read_records
from sftlab.data.record import Conversation, Meta, ToolCall, Turn
from sftlab.recipe.sections.render import RenderSection
from sftlab.render import IGNORE_INDEX, render_record, resolve_template
from sftlab.render.preview import preview_report, problems
from sftlab.render.sample import render_conversation, render_samples

EXAMPLES = Path(__file__).parent.parent / "examples" / "data"
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two numbers",
        "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}},
    },
}


def multi(system=None):
    return Conversation(
        system=system,
        turns=[
            Turn("user", "Name a colour."),
            Turn("assistant", "Blue."),
            Turn("user", "Another?"),
            Turn("assistant", "Green, of course."),
        ],
        meta=Meta(id="multi"),
    )


def tools():
    return Conversation(
        system="Use tools.",
        tools=[ADD],
        turns=[
            Turn("user", "What is 2 plus 3?"),
            Turn("assistant", "", tool_calls=[ToolCall("add", {"a": 2, "b": 3}, id="c1")]),
            Turn("tool", "5", tool_call_id="c1", name="add"),
            Turn("assistant", "It is 5."),
        ],
        meta=Meta(id="tools"),
    )


def runs(tok, sample) -> list[str]:
    """The decoded runs of consecutive trained tokens."""
    out, run = [], []
    for t, lab in zip(sample.input_ids, sample.labels, strict=True):
        if lab != IGNORE_INDEX:
            run.append(t)
        elif run:
            out.append(tok.decode(run))
            run = []
    return out + ([tok.decode(run)] if run else [])


def prompt_untrained(tok, conv, sample, n_messages: int, **kwargs) -> bool:
    """The inference prompt of the sample's last turn is a token prefix of it, and neither the user's
    message before it nor the assistant header the generation prompt adds carries loss."""
    from sftlab.render.messages import to_messages

    messages = to_messages(conv)[: n_messages - 1]
    render = lambda m, gen: tok(  # noqa: E731
        tok.apply_chat_template(m, tools=conv.tools, tokenize=False, add_generation_prompt=gen, **kwargs),
        add_special_tokens=False,
    )["input_ids"]
    prompt, before_user = render(messages, True), render(messages[:-1], False) if len(messages) > 1 else []
    return sample.input_ids[: len(prompt)] == prompt and all(
        x == IGNORE_INDEX for x in sample.labels[len(before_user) : len(prompt)]
    )


# ---- SmolLM2: ChatML, the embedded model's own template ------------------------------------------------


def test_smollm2_chatml_trains_bodies_and_im_end(tokenizer):
    sample = render_record(multi(system="Be brief."), tokenizer, RenderSection())
    assert runs(tokenizer, sample) == ["Blue.<|im_end|>", "Green, of course.<|im_end|>"]
    assert prompt_untrained(tokenizer, multi("Be brief."), sample, 5)
    tok = resolve_template(copy.deepcopy(tokenizer), "chatml")
    (sample,) = render_samples(tools(), tok, RenderSection(template="chatml"))
    assert runs(tok, sample) == [
        '<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call><|im_end|>',
        "It is 5.<|im_end|>",
    ]


# ---- Qwen3: its own template -----------------------------------------------------------------------------


def test_qwen3_single_turn_is_one_sample_with_empty_think_as_context(qwen3_tokenizer):
    tok = qwen3_tokenizer
    conv = Conversation(turns=[Turn("user", "Hi"), Turn("assistant", "Hello!")], meta=Meta(id="one"))
    out = render_conversation(conv, tok, RenderSection())
    (sample,) = out.samples
    assert out.mode == "whole" and out.empty_think == 1
    assert tok.decode(sample.input_ids).endswith(
        "<|im_start|>assistant\n<think>\n\n</think>\n\nHello!<|im_end|>\n"
    )
    assert runs(tok, sample) == ["Hello!<|im_end|>"]  # the empty think block is context, not a target
    assert prompt_untrained(tok, conv, sample, 2)
    trained = render_samples(conv, tok, RenderSection(drop_empty_think=False))
    assert runs(tok, trained[0]) == ["<think>\n\n</think>\n\nHello!<|im_end|>"]


def test_qwen3_multi_turn_one_sample_per_turn_in_inference_context(qwen3_tokenizer):
    tok = qwen3_tokenizer
    conv = multi(system="Be brief.")
    out = render_conversation(conv, tok, RenderSection())
    assert out.mode == "per_turn" and out.message_counts == [3, 5]
    first, second = out.samples
    assert runs(tok, first) == ["Blue.<|im_end|>"] and runs(tok, second) == ["Green, of course.<|im_end|>"]
    # the second sample's history is what a chat client sends back: the earlier answer without a think block
    assert "<|im_start|>assistant\nBlue.<|im_end|>" in tok.decode(second.input_ids)
    for sample, n in zip(out.samples, out.message_counts, strict=True):
        assert prompt_untrained(tok, conv, sample, n)
        assert sample.labels[-1] == IGNORE_INDEX and sample.labels[-2] == tok.convert_tokens_to_ids(
            "<|im_end|>"
        )


def test_qwen3_tools_each_call_trained_as_inference_renders_it(qwen3_tokenizer):
    tok = qwen3_tokenizer
    out = render_conversation(tools(), tok, RenderSection())
    assert out.mode == "per_turn" and len(out.samples) == 2
    call, answer = (runs(tok, s) for s in out.samples)
    assert call == ['<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call><|im_end|>']
    assert answer == ["It is 5.<|im_end|>"]
    assert '"name": "add"' in tok.decode(out.samples[1].input_ids).split("# Tools")[1]
    off = render_samples(tools(), tok, RenderSection(train_tool_calls=False))
    assert [runs(tok, s) for s in off] == [["It is 5.<|im_end|>"]]


# ---- Llama 3.2: built-in llama3 template on the real tokenizer ------------------------------------------


def test_llama3_real_tokenizer_trains_bodies_and_eot_id(llama3_real_tokenizer):
    tok = llama3_real_tokenizer
    out = render_conversation(multi(system="Be brief."), tok, RenderSection(template="llama3"))
    (sample,) = out.samples
    assert out.mode == "whole"
    assert sample.input_ids[0] == tok.bos_token_id and sample.labels[0] == IGNORE_INDEX
    assert runs(tok, sample) == ["Blue.<|eot_id|>", "Green, of course.<|eot_id|>"]
    assert prompt_untrained(tok, multi("Be brief."), sample, 5)
    (sample,) = render_samples(tools(), tok, RenderSection(template="llama3"))
    assert runs(tok, sample) == [
        '{"name": "add", "parameters": {"a": 2, "b": 3}}<|eot_id|>',
        "It is 5.<|eot_id|>",
    ]


def test_llama3_tokenizer_has_no_template_of_its_own(llama3_real_tokenizer):
    from sftlab.errors import SftlabError
    from sftlab.models import load_tokenizer

    with pytest.raises(SftlabError, match="no chat template"):
        resolve_template(load_tokenizer("llama3.2-tokenizer"), "model")
    assert "<|start_header_id|>" in llama3_real_tokenizer.chat_template


# ---- the preview's checks pass on real data for all three --------------------------------------------------


@pytest.mark.parametrize("family", ["smollm2", "qwen3", "llama3"])
def test_preview_checks_pass_on_example_data(family, tokenizer, qwen3_tokenizer, llama3_real_tokenizer):
    tok, template = {
        "smollm2": (resolve_template(copy.deepcopy(tokenizer), "chatml"), "chatml"),
        "qwen3": (qwen3_tokenizer, "model"),
        "llama3": (llama3_real_tokenizer, "llama3"),
    }[family]
    records = list(read_records(EXAMPLES / "sharegpt_multiturn.jsonl")) + list(
        read_records(EXAMPLES / "tool_calls.jsonl")
    )
    report = preview_report(records, tok, RenderSection(template=template))
    assert report["ok"], problems(report)
    for stats in report["sources"].values():
        assert stats["rendered"] == stats["records"] and stats["eot_trained"] and stats["prompt_is_prefix"]
        assert stats["tools_dropped"] == 0
        # only Qwen3 rewrites history: one sample per assistant turn there, one per record elsewhere
        assert (stats["samples"] > stats["records"]) == (family == "qwen3")
