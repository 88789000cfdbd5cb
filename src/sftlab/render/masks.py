"""Turn-by-turn rendering: token ids plus the span each message occupies, for any chat template.

Templates need no ``{% generation %}`` markers. We render growing prefixes of the
conversation with the tokenizer's own ``apply_chat_template`` and compare
*token* prefixes::

    render(m[:k], add_generation_prompt=True)  ─┐   tokens of assistant turn k
    render(m[:k+1])                           ─┴─▶ = the tokens between the two

    <|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n  Hello<|im_end|>  \\n
    └────────────── prompt (masked) ─────────────────────┘└─ trained ──────┘└masked┘

Every prefix must tokenize to a prefix of the whole rendering. A segment where it
does not (a template that rewrites earlier turns, as Qwen3 drops ``<think>`` blocks
of earlier answers, or BPE merging across a turn boundary) carries a ``problem``
instead of trusted boundaries; :mod:`sftlab.render.sample` then renders each trained
turn on its own (``render.history_rewrite``) or raises :class:`NotPrefixStableError`.
Whatever a template injects (a default system prompt, a BOS token) lands in the
prompt, untrained.

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
    generation prompt), ``[body, end)`` what its author writes, end-of-turn included.

    ``problem`` says why these boundaries cannot be trusted (``None``: they can).
    """

    index: int
    role: str
    start: int
    body: int
    end: int
    problem: str | None = None

    @property
    def stable(self) -> bool:
        return self.problem is None


def _render(tokenizer, messages, tools, gen: bool, template_kwargs) -> str:
    return tokenizer.apply_chat_template(
        messages, tools=tools or None, tokenize=False, add_generation_prompt=gen, **(template_kwargs or {})
    )


def _divergence(tokenizer, part: list[int], full: list[int]) -> str:
    i = next(
        (j for j, (a, b) in enumerate(zip(part, full, strict=False)) if a != b), min(len(part), len(full))
    )
    return (
        f"at token {i} the prefix has {tokenizer.decode(part[i : i + 4])!r} "
        f"but the full rendering has {tokenizer.decode(full[i : i + 4])!r}"
    )


def _render_all(tokenizer, messages, tools, template_kwargs, record_id, template):
    """Text of every closed prefix ``messages[:i+1]`` and of every assistant's generation prompt."""
    try:
        closed = [
            _render(tokenizer, messages[: i + 1], tools, False, template_kwargs) for i in range(len(messages))
        ]
        opened = {
            i: _render(tokenizer, messages[:i], tools, True, template_kwargs)
            for i, m in enumerate(messages)
            if m["role"] == "assistant" and i > 0
        }
    except Exception as err:  # jinja raise_exception, bad role order, missing keys
        if isinstance(err, RenderError):
            raise
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise RenderError(
            f"template '{template}' cannot render this conversation: {first}", record_id
        ) from None
    return closed, opened


def render_segments(
    tokenizer,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    *,
    record_id: str | None = None,
    template: str = "model",
    template_kwargs: dict[str, Any] | None = None,
    strict: bool = True,
) -> tuple[list[int], list[Segment]]:
    """Ids of the whole conversation and one :class:`Segment` per message.

    With ``strict`` (the default) the first segment with a ``problem`` raises
    :class:`NotPrefixStableError` naming ``template`` and ``record_id``; otherwise the
    segments carry their problems and the caller decides.
    """
    closed, opened = _render_all(tokenizer, messages, tools, template_kwargs, record_id, template)
    order = list(opened)
    encoded = tokenizer(closed + [opened[i] for i in order], add_special_tokens=False)["input_ids"]
    full = encoded[len(closed) - 1]
    ends = [len(ids) for ids in encoded[: len(closed)]]
    prompts = {i: encoded[len(closed) + j] for j, i in enumerate(order)}

    def off(ids: list[int], what: str) -> str | None:
        if full[: len(ids)] == ids:
            return None
        return f"the rendering of {what} is not a token prefix of the whole conversation ({_divergence(tokenizer, ids, full)})"

    segments = []
    for i, m in enumerate(messages):
        start = ends[i - 1] if i else 0
        body = len(prompts[i]) if i in prompts else start
        problem = (
            (off(encoded[i - 1], f"messages[:{i}]") if i else None)
            or off(encoded[i], f"messages[:{i + 1}]")
            or (off(prompts[i], f"messages[:{i}] + generation prompt") if i in prompts else None)
        )
        if problem is None and not start <= body <= ends[i]:
            problem = f"the generation prompt before message {i} does not sit between the previous message and this one"
        segments.append(Segment(i, m["role"], start, body, ends[i], problem))
    if strict:
        bad = next((s for s in segments if not s.stable), None)
        if bad is not None:
            raise not_prefix_stable(bad, template, record_id)
    return full, segments


def not_prefix_stable(segment: Segment, template: str, record_id, hint: str = "") -> NotPrefixStableError:
    """The error for a segment whose boundaries are not token prefixes, with how to fix it."""
    return NotPrefixStableError(
        f"template '{template}' is not prefix-stable: {segment.problem}; "
        + (
            hint
            or "fix the template (it must not rewrite earlier turns), set render.history_rewrite: per_turn, "
            "or choose another template with render.template"
        ),
        record_id,
    )


def trailing_whitespace(tokenizer, ids: list[int], start: int, end: int) -> int:
    """How many whitespace-only tokens end ``ids[start:end]`` (never all of them)."""
    n = 0
    while end - n - 1 > start and not tokenizer.decode([ids[end - n - 1]]).strip():
        n += 1
    return n
