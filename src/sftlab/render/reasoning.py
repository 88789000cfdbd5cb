"""Reasoning (``<think>...</think>``) inside rendered turns, and the thinking mode of a template.

Reasoning templates (Qwen3, DeepSeek-R1 distills) write a think block at the start of
an assistant turn — the record's reasoning, or an empty ``<think>\\n\\n</think>\\n\\n`` when
it has none — and switch thinking off at inference by closing an empty block in the
generation prompt (Qwen3's ``enable_thinking: false``)::

    thinking on:   prompt …<|im_start|>assistant\\n   body <think>\\nR\\n</think>\\n\\nA<|im_end|>
    thinking off:  prompt …<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n   body A<|im_end|>

A record with reasoning rendered with thinking off cannot be trained as inference will
see it, so the preview fails it; an empty block written into a trained turn is, by
default, context rather than a target (``render.drop_empty_think``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_CLOSED_EMPTY = re.compile(r"<think>\s*</think>\s*$")
_EMPTY = re.compile(r"\s*<think>\s*</think>\s*")
_PROBE = [{"role": "user", "content": "Hi"}]


@dataclass(frozen=True)
class ThinkBlock:
    """A think block at the start of ``ids[lo:hi]``: it (and the whitespace after it) ends before token ``end``."""

    end: int
    empty: bool


def think_block(tokenizer, ids: list[int], lo: int, hi: int) -> ThinkBlock | None:
    """The think block that opens ``ids[lo:hi]``, or ``None``.

    Found by decoding prefixes (binary search for the first one containing ``</think>``), so it
    works whether the tags are single added tokens (Qwen3) or several ordinary ones (inline text).
    """
    if hi <= lo or not tokenizer.decode(ids[lo : min(hi, lo + 8)]).lstrip().startswith("<think>"):
        return None
    if "</think>" not in tokenizer.decode(ids[lo:hi]):
        return None  # an unclosed block: leave the turn as it is
    a, b = lo + 1, hi  # the smallest m with "</think>" in decode(ids[lo:m]) lies in [a, b]
    while a < b:
        m = (a + b) // 2
        if "</think>" in tokenizer.decode(ids[lo:m]):
            b = m
        else:
            a = m + 1
    end = a
    while end < hi - 1 and not tokenizer.decode([ids[end]]).strip():
        end += 1
    return ThinkBlock(end, bool(_EMPTY.fullmatch(tokenizer.decode(ids[lo:end]))))


def prompt_closes_think(prompt: str) -> bool:
    """Does an inference prompt end with an empty, closed think block (thinking switched off)?"""
    return bool(_CLOSED_EMPTY.search(prompt))


def thinking_off(tokenizer, template_kwargs: dict[str, Any] | None = None) -> bool:
    """Does the tokenizer's template, with ``template_kwargs``, switch thinking off at inference?"""
    try:
        prompt = tokenizer.apply_chat_template(
            _PROBE, tokenize=False, add_generation_prompt=True, **(template_kwargs or {})
        )
    except Exception:  # a template that rejects the probe has no thinking mode to speak of
        return False
    return prompt_closes_think(prompt)


def thinking_hint(tokenizer, messages: list[dict[str, Any]], k: int, tools, template_kwargs) -> str:
    """Why message ``k`` cannot be rendered as inference sees it, when the reason is the thinking mode."""
    m = messages[k]
    if not (m.get("reasoning_content") or "<think>" in str(m.get("content") or "")):
        return ""
    prompt = tokenizer.apply_chat_template(
        messages[:k],
        tools=tools or None,
        tokenize=False,
        add_generation_prompt=True,
        **(template_kwargs or {}),
    )
    if not prompt_closes_think(prompt):
        return ""
    return (
        "this turn carries reasoning but the inference prompt switches thinking off (it ends with an empty "
        "think block, e.g. render.template_kwargs enable_thinking: false); remove that setting so inference "
        "thinks as training does, or set render.reasoning: drop"
    )
