"""The canonical record every stage speaks.

A :class:`Conversation` is an optional system prompt, optional tool definitions
and ordered turns; an assistant turn may carry a reasoning (chain-of-thought)
part and tool calls; a tool turn carries a tool result. A :class:`TextRecord` is
plain text for continued pre-training. Readers turn any file format into these,
writers turn them back; nothing between packages passes dicts of unknown shape.

>>> conv = Conversation(turns=[Turn("user", "2+2?"), Turn("assistant", "4", reasoning="2+2=4")])
>>> conv.instruction, conv.response
('2+2?', '4')
>>> Conversation.from_dict(conv.to_dict()) == conv
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("user", "assistant", "tool")


@dataclass
class ToolCall:
    """A call the assistant makes; ``arguments`` is a JSON object when it parses, else the raw string."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        """Arguments as a JSON string (what OpenAI-style APIs carry)."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, ensure_ascii=False)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "arguments": self.arguments}
        if self.id is not None:
            d["id"] = self.id
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ToolCall:
        return cls(name=d["name"], arguments=d.get("arguments", {}), id=d.get("id"))


@dataclass
class Turn:
    """One message after the system prompt.

    ``weight`` scales this turn's loss; ``None`` means the default of the
    masking policy (assistant turns trained, others not).
    """

    role: Role
    content: str
    reasoning: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    weight: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.reasoning is not None:
            d["reasoning"] = self.reasoning
        if self.tool_calls:
            d["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.tool_call_id is not None:
            d["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            d["name"] = self.name
        if self.weight is not None:
            d["weight"] = self.weight
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Turn:
        return cls(
            role=d["role"],
            content=d.get("content", ""),
            reasoning=d.get("reasoning"),
            tool_calls=[ToolCall.from_dict(c) for c in d.get("tool_calls") or []],
            tool_call_id=d.get("tool_call_id"),
            name=d.get("name"),
            weight=d.get("weight"),
        )


@dataclass
class Meta:
    """Where a record came from and what it is for.

    ``task`` and ``label`` drive stratified splits, balance checks and
    per-task metrics; ``provenance`` records how it was made (teacher, template,
    parent id, curation edits); ``extra`` keeps unmapped source columns so that
    conversions lose nothing. ``source_shape`` keeps, per source format, what the
    canonical record cannot say about how the source wrote it (Alpaca's
    ``instruction``/``input`` split, a JSON text's spacing, an empty ``tools: "[]"``),
    so that writing that format again gives the source's own fields and values;
    it is set only when the default writer would not reproduce the row (see
    :mod:`sftlab.data.formats._shape`).
    """

    id: str | None = None
    source: str | None = None
    task: str | None = None
    label: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    source_shape: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for key in ("id", "source", "task", "label"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        if self.provenance:
            d["provenance"] = self.provenance
        if self.extra:
            d["extra"] = self.extra
        if self.source_shape:
            d["source_shape"] = self.source_shape
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Meta:
        d = d or {}
        return cls(
            id=d.get("id"),
            source=d.get("source"),
            task=d.get("task"),
            label=d.get("label"),
            provenance=dict(d.get("provenance") or {}),
            extra=dict(d.get("extra") or {}),
            source_shape=dict(d.get("source_shape") or {}),
        )


@dataclass
class Conversation:
    """A chat sample: system prompt, tool definitions, turns, metadata."""

    turns: list[Turn]
    system: str | None = None
    tools: list[dict[str, Any]] | None = None
    meta: Meta = field(default_factory=Meta)

    kind = "conversation"

    @property
    def instruction(self) -> str:
        """The first user message (the 'prompt' of a single-turn sample)."""
        return next((t.content for t in self.turns if t.role == "user"), "")

    @property
    def response(self) -> str:
        """The last assistant message's content."""
        return next((t.content for t in reversed(self.turns) if t.role == "assistant"), "")

    def prompt_text(self) -> str:
        """System prompt and every non-assistant turn, for similarity and dedup."""
        parts = [self.system] if self.system else []
        parts += [t.content for t in self.turns if t.role != "assistant"]
        return "\n".join(parts)

    def all_text(self) -> str:
        """Everything a model would read or write in this record."""
        parts = [self.system] if self.system else []
        for t in self.turns:
            if t.reasoning:
                parts.append(t.reasoning)
            parts.append(t.content)
            parts += [f"{c.name}({c.arguments_json()})" for c in t.tool_calls]
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON form (what ``*.sftlab.jsonl`` files hold)."""
        d: dict[str, Any] = {"kind": "conversation"}
        if self.system is not None:
            d["system"] = self.system
        if self.tools:
            d["tools"] = self.tools
        d["turns"] = [t.to_dict() for t in self.turns]
        meta = self.meta.to_dict()
        if meta:
            d["meta"] = meta
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Conversation:
        return cls(
            turns=[Turn.from_dict(t) for t in d.get("turns", [])],
            system=d.get("system"),
            tools=d.get("tools"),
            meta=Meta.from_dict(d.get("meta")),
        )


@dataclass
class TextRecord:
    """Plain text for continued pre-training: every token is trained."""

    text: str
    meta: Meta = field(default_factory=Meta)

    kind = "text"

    def all_text(self) -> str:
        return self.text

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": "text", "text": self.text}
        meta = self.meta.to_dict()
        if meta:
            d["meta"] = meta
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TextRecord:
        return cls(text=d["text"], meta=Meta.from_dict(d.get("meta")))


Record = Conversation | TextRecord


def record_from_dict(d: dict[str, Any]) -> Record:
    """Inverse of ``record.to_dict()`` for either kind."""
    return TextRecord.from_dict(d) if d.get("kind") == "text" else Conversation.from_dict(d)
