"""Eval samples: what the model is asked (every turn before the last answer) and what it should say.

>>> from sftlab.data.record import Conversation, Meta, Turn
>>> conv = Conversation([Turn("user", "2+2?"), Turn("assistant", "4")], system="Be brief.", meta=Meta(id="r1"))
>>> s = to_samples([conv])[0]
>>> s.messages, s.expected
([{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': '2+2?'}], '4')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sftlab.data.record import Conversation, Record
from sftlab.render.messages import turn_message


@dataclass
class EvalSample:
    """One question of the eval set: chat messages up to the answer, the expected answer, and its tags."""

    id: str
    messages: list[dict[str, Any]]
    expected: str
    task: str | None = None
    label: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    tools: list[dict[str, Any]] | None = None
    """Tool schemas offered in the prompt, rendered by the chat template exactly as in training."""


def prompt_messages(conv: Conversation) -> list[dict[str, Any]]:
    """System prompt plus every turn before the last assistant turn."""
    last = max((i for i, t in enumerate(conv.turns) if t.role == "assistant"), default=len(conv.turns))
    head = [{"role": "system", "content": conv.system}] if conv.system else []
    return head + [turn_message(t) for t in conv.turns[:last]]


def to_samples(records: Sequence[Record]) -> list[EvalSample]:
    """Conversations that end in an assistant answer, as eval samples (plain-text records have no question)."""
    samples = []
    for i, rec in enumerate(records):
        if not isinstance(rec, Conversation) or not any(t.role == "assistant" for t in rec.turns):
            continue
        samples.append(
            EvalSample(
                id=rec.meta.id or f"eval-{i}",
                messages=prompt_messages(rec),
                expected=rec.response,
                task=rec.meta.task,
                label=rec.meta.label,
                tools=rec.tools or None,
            )
        )
    return samples
