"""Exact mask positions for several templates, checked against a reference built from the rendered text."""

from __future__ import annotations

import copy

import pytest

from sftlab.data.record import Conversation, Meta, TextRecord, ToolCall, Turn
from sftlab.recipe.sections.render import RenderSection
from sftlab.render import (
    IGNORE_INDEX,
    EmptyLabelsError,
    NotPrefixStableError,
    TooLongError,
    render_record,
    resolve_template,
)
from sftlab.render.messages import to_messages

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two numbers",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            },
        },
    }
]

# Llama 3's pre-tokenizer regex keeps "\n\n" whole before a word (GPT-2's splits it), which is
# what makes the Llama 3 template prefix-stable on a Llama 3 tokenizer.
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def single():
    return Conversation(
        turns=[Turn("user", "Hi there"), Turn("assistant", "Hello! How can I help?")], meta=Meta(id="single")
    )


def multi():
    return Conversation(
        turns=[
            Turn("user", "Name a colour."),
            Turn("assistant", "Blue."),
            Turn("user", "Another?"),
            Turn("assistant", "Green, of course."),
        ],
        meta=Meta(id="multi"),
    )


def with_system():
    conv = multi()
    conv.system, conv.meta = "You answer briefly.", Meta(id="system")
    return conv


def with_tools():
    return Conversation(
        system="Use tools.",
        tools=TOOLS,
        turns=[
            Turn("user", "What is 2 plus 3?"),
            Turn("assistant", "", tool_calls=[ToolCall("add", {"a": 2, "b": 3}, id="c1")]),
            Turn("tool", "5", tool_call_id="c1", name="add"),
            Turn("assistant", "It is 5."),
        ],
        meta=Meta(id="tools"),
    )


CONVERSATIONS = [single, multi, with_system, with_tools]


@pytest.fixture(scope="module")
def llama3_tokenizer(tokenizer):
    """The SmolLM2 vocabulary with Llama 3's pre-tokenizer and header/end-of-turn special tokens."""
    from tokenizers import Regex, pre_tokenizers

    tok = copy.deepcopy(tokenizer)
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.add_special_tokens(
        {
            "additional_special_tokens": [
                "<|begin_of_text|>",
                "<|start_header_id|>",
                "<|end_header_id|>",
                "<|eot_id|>",
            ]
        }
    )
    return resolve_template(tok, "llama3")


@pytest.fixture(scope="module")
def mistral_tokenizer(tokenizer):
    tok = copy.deepcopy(tokenizer)
    tok.add_special_tokens(
        {
            "additional_special_tokens": [
                "[INST]",
                "[/INST]",
                "[TOOL_CALLS]",
                "[AVAILABLE_TOOLS]",
                "[/AVAILABLE_TOOLS]",
                "[TOOL_RESULTS]",
                "[/TOOL_RESULTS]",
            ]
        }
    )
    return resolve_template(tok, "mistral")


@pytest.fixture(scope="module")
def chatml_tokenizer(tokenizer):
    return resolve_template(copy.deepcopy(tokenizer), "chatml")


def reference_labels(tok, conv, end_marker: str) -> list[int]:
    """Trained = tokens inside an assistant turn's text, from its first content character through ``end_marker``.

    Built from character offsets of the full rendering, independently of the turn-by-turn algorithm.
    """
    messages = to_messages(conv)
    text = tok.apply_chat_template(messages, tools=conv.tools, tokenize=False)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    spans, cursor = [], 0
    for m in messages:
        if m["role"] != "assistant":
            cursor = text.index(m["content"], cursor) + len(m["content"])
            continue
        # the assistant's text starts right after the header the generation prompt ends with
        head = tok.apply_chat_template(
            messages[: messages.index(m)], tools=conv.tools, tokenize=False, add_generation_prompt=True
        )
        start = len(head)
        assert text.startswith(head)
        end = text.index(end_marker, start) + len(end_marker)
        spans.append((start, end))
        cursor = end
    labels = []
    for tid, (a, b) in zip(enc["input_ids"], enc["offset_mapping"], strict=True):
        inside = any(s <= a and b <= e for s, e in spans) and b > a
        labels.append(tid if inside else IGNORE_INDEX)
    return labels


@pytest.mark.parametrize("make", CONVERSATIONS)
def test_smollm_model_template_masks(tokenizer, make):
    conv = make()
    sample = render_record(conv, tokenizer, RenderSection())
    assert sample.labels == reference_labels(tokenizer, conv, "<|im_end|>")
    assert sample.id == conv.meta.id


@pytest.mark.parametrize("make", CONVERSATIONS)
@pytest.mark.parametrize(
    ("fixture", "marker"),
    [
        ("chatml_tokenizer", "<|im_end|>"),
        ("llama3_tokenizer", "<|eot_id|>"),
        ("mistral_tokenizer", "<|im_end|>"),
    ],
)
def test_builtin_template_masks(request, make, fixture, marker):
    tok = request.getfixturevalue(fixture)
    conv = make()
    sample = render_record(conv, tok, RenderSection(template=fixture.removesuffix("_tokenizer")))
    expected = reference_labels(tok, conv, marker)
    assert sample.labels == expected
    assert sum(x != IGNORE_INDEX for x in expected) > 0


def test_smollm_default_system_prompt_is_masked_and_chatml_exact(tokenizer):
    sample = render_record(single(), tokenizer, RenderSection())
    text = tokenizer.decode(sample.input_ids)
    assert "You are a helpful AI assistant named SmolLM" in text  # injected by the template
    trained = tokenizer.decode([t for t in sample.labels if t != IGNORE_INDEX])
    assert trained == "Hello! How can I help?<|im_end|>"
    # the newline after <|im_end|> is the last token and is not trained
    assert tokenizer.decode(sample.input_ids[-1:]) == "\n" and sample.labels[-1] == IGNORE_INDEX


@pytest.mark.parametrize("make", CONVERSATIONS)
def test_end_of_turn_trained_after_every_assistant_turn(tokenizer, make):
    sample = render_record(make(), tokenizer, RenderSection())
    eot = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assistant_turns = sum(t.role == "assistant" for t in make().turns)
    trained_eot = sum(1 for t in sample.labels if t == eot)
    assert trained_eot == assistant_turns
    # pad == eos here: labels come from the mask, so the end-of-turn token is not dropped as "padding"
    assert tokenizer.pad_token_id == eot


def test_last_assistant_and_everything(tokenizer):
    last = render_record(multi(), tokenizer, RenderSection(train_on="last_assistant"))
    assert tokenizer.decode([t for t in last.labels if t != IGNORE_INDEX]) == "Green, of course.<|im_end|>"
    everything = render_record(multi(), tokenizer, RenderSection(train_on="everything"))
    assert everything.labels == everything.input_ids


def test_tool_call_turns_can_be_left_untrained(chatml_tokenizer):
    tok = chatml_tokenizer
    on = render_record(with_tools(), tok, RenderSection(template="chatml"))
    off = render_record(with_tools(), tok, RenderSection(template="chatml", train_tool_calls=False))
    assert '"name": "add"' in tok.decode([t for t in on.labels if t != IGNORE_INDEX])
    assert tok.decode([t for t in off.labels if t != IGNORE_INDEX]) == "It is 5.<|im_end|>"
    assert "<tools>" in tok.decode(on.input_ids)


def test_turn_weights_scale_and_zero(tokenizer):
    conv = multi()
    conv.turns[1].weight = 0.0
    conv.turns[3].weight = 2.0
    sample = render_record(conv, tokenizer, RenderSection())
    assert tokenizer.decode([t for t in sample.labels if t != IGNORE_INDEX]) == "Green, of course.<|im_end|>"
    assert sample.weights is not None
    assert {w for w, lab in zip(sample.weights, sample.labels, strict=True) if lab != IGNORE_INDEX} == {2.0}


def test_all_masked_record_error_names_id(tokenizer):
    conv = single()
    conv.meta.id = "rec-42"
    conv.turns[1].weight = 0
    with pytest.raises(EmptyLabelsError, match="rec-42"):
        render_record(conv, tokenizer, RenderSection())


def test_non_prefix_stable_template_is_detected(tokenizer, tmp_path):
    # numbers each message by how many messages follow it: earlier turns change as the conversation grows
    unstable = tmp_path / "unstable.jinja"
    unstable.write_text(
        "{% for m in messages %}<|im_start|>{{ m['role'] }} {{ messages|length - loop.index }}\n"
        "{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    tok = resolve_template(copy.deepcopy(tokenizer), str(unstable))
    with pytest.raises(NotPrefixStableError) as err:
        render_record(multi(), tok, RenderSection(template=str(unstable)))
    assert "multi" in str(err.value) and "unstable.jinja" in str(err.value)


def test_model_template_missing_is_an_error(tokenizer):
    from sftlab.errors import SftlabError

    tok = copy.deepcopy(tokenizer)
    tok.chat_template = None
    with pytest.raises(SftlabError, match="no chat template"):
        resolve_template(tok, "model")


def test_truncation_drop_turns_keeps_first_pair(tokenizer):
    full = render_record(with_system(), tokenizer, RenderSection())
    cfg = RenderSection(max_length=len(full) - 3)
    cut = render_record(with_system(), tokenizer, cfg)
    assert cut.truncated and len(cut) <= cfg.max_length
    assert cut.input_ids == full.input_ids[: len(cut)]
    assert tokenizer.decode([t for t in cut.labels if t != IGNORE_INDEX]) == "Blue.<|im_end|>"
    with pytest.raises(TooLongError, match="system"):
        render_record(
            with_system(), tokenizer, RenderSection(max_length=len(full) - 3, truncation="drop_record")
        )
    with pytest.raises(TooLongError, match="first"):
        render_record(with_system(), tokenizer, RenderSection(max_length=12))


def test_text_record_trains_everything_and_ends_with_eos(tokenizer):
    rec = TextRecord("The quick brown fox jumps over the lazy dog.", meta=Meta(id="t1"))
    sample = render_record(rec, tokenizer, RenderSection())
    assert sample.labels == sample.input_ids
    assert sample.input_ids[-1] == tokenizer.eos_token_id
    short = render_record(rec, tokenizer, RenderSection(max_length=8))
    assert len(short) == 8 and short.truncated


def test_reasoning_inline_and_template(tokenizer):
    conv = Conversation(
        turns=[Turn("user", "2+2?"), Turn("assistant", "4", reasoning="two and two")], meta=Meta(id="r")
    )
    inline = render_record(conv, tokenizer, RenderSection(reasoning="inline"))
    assert (
        tokenizer.decode([t for t in inline.labels if t != IGNORE_INDEX])
        == "<think>two and two</think>\n4<|im_end|>"
    )
    # the SmolLM template ignores reasoning_content: the reasoning is simply not rendered
    plain = render_record(conv, tokenizer, RenderSection())
    assert "two and two" not in tokenizer.decode(plain.input_ids)
