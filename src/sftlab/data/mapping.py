"""Column and role mapping from a source's ``mapping:`` block.

Keys follow LLaMA-Factory's ``dataset_info.json`` (``columns`` and ``tags``),
accepted flat; values name the column or role string used in the file:

>>> m = Mapping.parse({"prompt": "question", "response": "answer", "user_tag": "Human"})
>>> m.rename_columns({"question": "2+2?", "answer": "4", "level": 1})
{'instruction': '2+2?', 'output': '4', 'level': 1}
>>> m.role("Human"), m.role("gpt")
('user', 'assistant')

``reasoning_tag: think`` asks readers to split a leading ``<think>…</think>``
from assistant answers into ``Turn.reasoning`` (never done unless asked).
A nested ``{columns: {...}, tags: {...}}`` block, as in ``dataset_info.json``,
is flattened. LLaMA-Factory columns sftlab cannot train on (images, videos,
audios; chosen, rejected, kto_tag) are refused with the reason:

>>> Mapping.parse({"columns": {"messages": "messages", "images": "images"}})
Traceback (most recent call last):
...
sftlab.errors.DataError: mapping.images: multimodal inputs are not supported (sftlab trains on text); remove the column to train on the text alone
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, field
from typing import Any

from sftlab.errors import DataError

#: mapping key → our internal column name (LLaMA-Factory name first, ours as alias).
COLUMN_KEYS: dict[str, str] = {
    "prompt": "instruction",
    "instruction": "instruction",
    "query": "input",
    "input": "input",
    "response": "output",
    "output": "output",
    "history": "history",
    "messages": "messages",
    "conversations": "messages",
    "system": "system",
    "tools": "tools",
    "text": "text",
    "id": "id",
    "source": "source",
    "task": "task",
    "label": "label",
}

#: tag key → the canonical role it names ("system" and "function_call" are pseudo-roles).
TAG_KEYS: dict[str, str] = {
    "user_tag": "user",
    "assistant_tag": "assistant",
    "observation_tag": "tool",
    "function_tag": "function_call",
    "system_tag": "system",
}
OTHER_KEYS = ("role_tag", "content_tag", "reasoning_tag", "formatting")

_MULTIMODAL = "multimodal inputs are not supported (sftlab trains on text); remove the column to train on the text alone"
_PREFERENCE = "preference data is not supported (sftlab does supervised fine-tuning); use the SFT columns (prompt/response or messages)"
#: LLaMA-Factory column keys that name data sftlab does not train on, and why.
UNSUPPORTED_KEYS: dict[str, str] = {
    "images": _MULTIMODAL,
    "videos": _MULTIMODAL,
    "audios": _MULTIMODAL,
    "chosen": _PREFERENCE,
    "rejected": _PREFERENCE,
    "kto_tag": _PREFERENCE,
}

#: Role spellings seen in the wild, understood without any mapping.
DEFAULT_ROLES: dict[str, str] = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "observation": "tool",
    "function": "tool",
    "ipython": "tool",
    "function_call": "function_call",
}


def _at(where: str, key: str) -> str:
    """``where.key`` for messages; the bare key when the caller already says where (a recipe path)."""
    if not key:
        return f"{where}: " if where else ""
    return f"{where}.{key}" if where else key


def flatten(raw: AbcMapping[str, Any] | None, *, where: str = "mapping") -> dict[str, Any]:
    """One flat dict from a mapping that may nest ``columns:``/``tags:`` as ``dataset_info.json`` does.

    >>> flatten({"columns": {"messages": "dialog"}, "tags": {"role_tag": "speaker"}, "user_tag": "Human"})
    {'messages': 'dialog', 'role_tag': 'speaker', 'user_tag': 'Human'}
    """
    flat: dict[str, Any] = {}
    for key, value in (raw or {}).items():
        items = (
            value.items() if key in ("columns", "tags") and isinstance(value, AbcMapping) else [(key, value)]
        )
        for k, v in items:
            if k in flat and flat[k] != v:
                raise DataError(f"{_at(where, k)}: given twice ({flat[k]!r} and {v!r}); keep one")
            flat[k] = v
    return flat


@dataclass
class Mapping:
    """A parsed ``mapping:`` block; the empty mapping changes nothing."""

    columns: dict[str, str] = field(default_factory=dict)  # source column → internal name
    roles: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ROLES))
    role_tag: str | None = None
    content_tag: str | None = None
    reasoning_tag: str | None = None
    formatting: str | None = None

    @classmethod
    def parse(cls, raw: AbcMapping[str, Any] | Mapping | None, *, where: str = "mapping") -> Mapping:
        """Validate a mapping dict; unknown keys are a :class:`DataError` naming the nearest valid key."""
        if isinstance(raw, Mapping):
            return raw
        flat = flatten(raw, where=where)
        m = cls()
        valid = [*COLUMN_KEYS, *TAG_KEYS, *OTHER_KEYS]
        for key, value in flat.items():
            if key in UNSUPPORTED_KEYS:
                raise DataError(f"{_at(where, key)}: {UNSUPPORTED_KEYS[key]}")
            if not isinstance(value, str) or not value:
                raise DataError(
                    f"{_at(where, key)}: expected a non-empty string (a column or role name), got {value!r}"
                )
            if key in COLUMN_KEYS:
                m.columns[value] = COLUMN_KEYS[key]
            elif key in TAG_KEYS:
                m.roles[value] = TAG_KEYS[key]
            elif key in OTHER_KEYS:
                setattr(m, key, value)
            else:
                near = difflib.get_close_matches(key, valid, n=1)
                hint = f"; did you mean '{near[0]}'?" if near else f"; valid keys: {', '.join(valid)}"
                raise DataError(f"{_at(where, '')}unknown key '{key}'{hint}")
        if m.formatting and m.formatting not in ("alpaca", "sharegpt", "openai"):
            raise DataError(
                f"{_at(where, 'formatting')}: expected alpaca, sharegpt or openai, got {m.formatting!r}"
            )
        return m

    @property
    def is_identity(self) -> bool:
        return not self.columns

    def rename_columns(self, row: dict[str, Any]) -> dict[str, Any]:
        """``row`` with mapped source columns renamed to internal names (others unchanged)."""
        if not self.columns:
            return row
        return {self.columns.get(k, k): v for k, v in row.items()}

    def role(self, raw: Any) -> str | None:
        """Canonical role for a role string from the file, or ``None`` if unknown."""
        if not isinstance(raw, str):
            return None
        hit = self.roles.get(raw)
        if hit is None:
            hit = self.roles.get(raw.lower())
        return hit

    def format_hint(self) -> str | None:
        """The format implied by ``formatting:`` (LLaMA-Factory's name for it)."""
        return {"openai": "messages"}.get(self.formatting or "", self.formatting)
