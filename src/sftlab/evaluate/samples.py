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

from sftlab.data.record import Conversation, Record, Turn


@dataclass
class EvalSample:
    """One question of the eval set: chat messages up to the answer, the expected answer, and its tags."""

    id: str
    messages: list[dict[str, Any]]
    expected: str
    task: str | None = None
    label: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def turn_message(turn: Turn) -> dict[str, Any]:
    """A turn as an OpenAI-style chat message (what chat templates take)."""
    msg: dict[str, Any] = {"role": turn.role, "content": turn.content}
    if turn.tool_calls:
        msg["tool_calls"] = [
            {"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in turn.tool_calls
        ]
    if turn.tool_call_id is not None:
        msg["tool_call_id"] = turn.tool_call_id
    return msg


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
            )
        )
    return samples
