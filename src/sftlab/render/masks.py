"""Turn-by-turn rendering: token ids plus the span each message occupies, for any chat template.

Templates need no ``{% generation %}`` markers. We render growing prefixes of the
conversation with the tokenizer's own ``apply_chat_template`` and compare
*token* prefixes::

    render(m[:k], add_generation_prompt=True)  ─┐   tokens of assistant turn k
    render(m[:k+1])                           ─┴─▶ = the tokens between the two

    <|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n  Hello<|im_end|>  \\n
    └────────────── prompt (masked) ─────────────────────┘└─ trained ──────┘└masked┘

Every prefix must tokenize to a prefix of the whole rendering; if not (a template
that rewrites earlier turns, or BPE merging across a turn boundary) we raise
:class:`NotPrefixStableError` instead of guessing. Whatever a template injects
(a default system prompt, a BOS token) lands in the prompt, untrained.

The end-of-turn tokens the template writes after an assistant message (``<|im_end|>``,
``</s>``, ``<|eot_id|>``) are trained, so the model learns to stop; whitespace-only
tokens after them (ChatML's trailing ``\\n``) are not: generation stops at the
end-of-turn token, so the model never needs to produce them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sftlab.render.errors import NotPrefixStableError, RenderError


@dataclass
class Segment:
    """The tokens message ``index`` adds: ``[start, body)`` is its header (for assistants, the
    generation prompt), ``[body, end)`` what its author writes, end-of-turn included."""

    index: int
    role: str
    start: int
    body: int
    end: int


def _render(tokenizer, messages, tools, gen: bool) -> str:
    return tokenizer.apply_chat_template(
        messages, tools=tools or None, tokenize=False, add_generation_prompt=gen
    )


def _divergence(tokenizer, part: list[int], full: list[int]) -> str:
    i = next(
        (j for j, (a, b) in enumerate(zip(part, full, strict=False)) if a != b), min(len(part), len(full))
    )
    return (
        f"at token {i} the prefix has {tokenizer.decode(part[i : i + 4])!r} "
        f"but the full rendering has {tokenizer.decode(full[i : i + 4])!r}"
    )


def render_segments(
    tokenizer,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    *,
    record_id: str | None = None,
    template: str = "model",
) -> tuple[list[int], list[Segment]]:
    """Ids of the whole conversation and one :class:`Segment` per message.

    Raises :class:`NotPrefixStableError` naming ``template`` and ``record_id``
    when a prefix rendering is not a token prefix of the whole.
    """
    try:
        closed = [_render(tokenizer, messages[: i + 1], tools, False) for i in range(len(messages))]
        opened = {
            i: _render(tokenizer, messages[:i], tools, True)
            for i, m in enumerate(messages)
            if m["role"] == "assistant" and i > 0
        }
    except Exception as err:  # jinja raise_exception, bad role order, missing keys
        if isinstance(err, RenderError):
            raise
        raise RenderError(
            f"template '{template}' cannot render this conversation: {str(err).splitlines()[0] if str(err) else type(err).__name__}",
            record_id,
        ) from None
    order = list(opened)
    texts = closed + [opened[i] for i in order]
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    full = encoded[len(closed) - 1]
    for text_i, ids in enumerate(encoded):
        if full[: len(ids)] != ids:
            msg_i = text_i if text_i < len(closed) else order[text_i - len(closed)]
            what = f"messages[:{msg_i + 1 if text_i < len(closed) else msg_i}]"
            if text_i >= len(closed):
                what += " + generation prompt"
            raise NotPrefixStableError(
                f"template '{template}' is not prefix-stable: the rendering of {what} is not a token prefix "
                f"of the whole conversation ({_divergence(tokenizer, ids, full)}); fix the template "
                "(it must not rewrite earlier turns) or choose another with render.template",
                record_id,
            )
    ends = [len(ids) for ids in encoded[: len(closed)]]
    body = {i: len(encoded[len(closed) + j]) for j, i in enumerate(order)}
    segments = []
    for i, m in enumerate(messages):
        start = ends[i - 1] if i else 0
        b = body.get(i, start)
        if b < start or b > ends[i]:
            raise NotPrefixStableError(
                f"template '{template}': the generation prompt before message {i} does not sit between "
                "the previous message and this one",
                record_id,
            )
        segments.append(Segment(i, m["role"], start, b, ends[i]))
    return full, segments


def trailing_whitespace(tokenizer, ids: list[int], start: int, end: int) -> int:
    """How many whitespace-only tokens end ``ids[start:end]`` (never all of them)."""
    n = 0
    while end - n - 1 > start and not tokenizer.decode([ids[end - n - 1]]).strip():
        n += 1
    return n
