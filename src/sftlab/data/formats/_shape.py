"""How a source wrote what the canonical record does not keep, so a writer can write it the same way.

A record read from Alpaca, ShareGPT or OpenAI messages carries, in
``meta.source_shape[format]``, only what its format's default writer would get
wrong: JSON texts inside strings written with Python's spacing, ``tools: "[]"``,
an Alpaca ``input`` merged into the user turn, a system prompt given as a column.
Writers of that format read it back; writers of other formats carry it along in
a ``source_shape`` column, so ``alpaca → messages → alpaca`` gives the Alpaca
rows back. Every entry is checked against the record when written (a stored
JSON text is used only for the value it encodes), so a record edited by
curation is written from its new content, never from a stale copy.

>>> texts = JsonTexts()
>>> texts.add({"city": "Paris"}, '{"city": "Paris"}')
>>> shape = texts.shape(); shape
{'json': 'spaced'}
>>> json_text({"city": "Oslo"}, shape)
'{"city": "Oslo"}'
>>> json_text({"city": "Oslo"}, {})
'{"city":"Oslo"}'
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson


def compact(value: Any) -> str:
    """What sftlab writes by default: no spaces, non-ASCII as is (orjson)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # ints beyond 64 bits: the stdlib copes
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


#: JSON writing styles seen in the wild, by name (``compact`` is the default and never stored).
STYLES: dict[str, Callable[[Any], str]] = {
    "compact": compact,
    "spaced": lambda v: json.dumps(v, ensure_ascii=False),  # Python's json.dumps(..., ensure_ascii=False)
    "spaced_ascii": json.dumps,  # Python's json.dumps defaults (LLaMA-Factory's demo files)
}


class JsonTexts:
    """The JSON texts of one record as read, paired with the value the writer will serialise."""

    def __init__(self) -> None:
        self.pairs: list[tuple[Any, str]] = []

    def add(self, value: Any, raw: Any) -> None:
        if isinstance(raw, str):
            self.pairs.append((value, raw))

    def shape(self) -> dict[str, Any]:
        """``{}`` when compact JSON reproduces every text; else the best style and the texts it misses."""
        if all(compact(v) == raw for v, raw in self.pairs):
            return {}
        hits = {name: sum(STYLES[name](v) == raw for v, raw in self.pairs) for name in STYLES}
        best = max(hits, key=lambda name: (hits[name], name == "compact"))
        out: dict[str, Any] = {} if best == "compact" else {"json": best}
        groups: dict[str, tuple[str, list[str]]] = {}  # compact key -> (text in the best style, raw texts)
        for v, raw in self.pairs:
            groups.setdefault(compact(v), (STYLES[best](v), []))[1].append(raw)
        missed: dict[str, str | list[str]] = {}
        for key, (styled, raws) in groups.items():
            if any(raw != styled for raw in raws):
                # one value written twice, two ways: every occurrence, in order
                missed[key] = raws[0] if len(set(raws)) == 1 else raws
        if missed:
            out["texts"] = missed
        return out


def json_text(value: Any, shape: dict[str, Any], seen: dict[str, int] | None = None) -> str:
    """``value`` as JSON text the way the source wrote it (its own text when the value is unchanged).

    ``seen`` counts, within one record, how often each value was written, for a
    value the source wrote more than once in different ways.
    """
    key = compact(value)
    texts = shape.get("texts")
    if texts and key in texts:
        text = texts[key]
        if isinstance(text, str):
            return text
        n = seen.get(key, 0) if seen is not None else 0
        if seen is not None:
            seen[key] = n + 1
        return text[min(n, len(text) - 1)]
    style = shape.get("json")
    return STYLES[style](value) if style in STYLES else key


def remember_tools(
    raw: Any, tools: list | None, texts: JsonTexts, shape: dict[str, Any], *, as_text: bool
) -> None:
    """Note how a ``tools`` field was written: JSON text or a list (``as_text`` is the writer's default), or empty."""
    if raw is None:
        return
    if not tools:  # "", "[]" or []: the record has no tools, the row had the field
        shape.setdefault("empty", {})["tools"] = raw
        return
    if isinstance(raw, str):
        texts.add(tools, raw)
        if not as_text:
            shape["tools_as"] = "text"
    elif as_text:
        shape["tools_as"] = "list"


def tools_field(tools: list | None, shape: dict[str, Any], *, as_text: bool) -> tuple[bool, Any]:
    """``(write?, value)`` of the ``tools`` field for a record's tools under its source shape."""
    if not tools:
        empty = shape.get("empty") or {}
        return ("tools" in empty, empty.get("tools"))
    text = {"text": True, "list": False}.get(shape.get("tools_as", ""), as_text)
    return True, json_text(tools, shape) if text else tools


def remember_empty(row: dict[str, Any], keys: tuple[str, ...], shape: dict[str, Any]) -> None:
    """Optional fields present but empty (``system: ""``, ``history: []``), which writers otherwise omit."""
    for key in keys:
        value = row.get(key)
        if value is not None and not value:
            shape.setdefault("empty", {})[key] = value


def remember_columns(
    columns: dict[str, str], row: dict[str, Any], own: frozenset[str], shape: dict[str, Any]
) -> None:
    """Source names of the format's ``own`` columns that the mapping renamed (``prompt: question``)."""
    renamed = {
        ours: theirs for theirs, ours in columns.items() if ours != theirs and ours in own and ours in row
    }
    if renamed:
        shape["columns"] = renamed


def restore_columns(row: dict[str, Any], shape: dict[str, Any]) -> dict[str, Any]:
    """``row`` with renamed columns under their source names again (order kept)."""
    names = shape.get("columns")
    return {names.get(k, k): v for k, v in row.items()} if names else row


def finish(texts: JsonTexts, shape: dict[str, Any]) -> dict[str, Any]:
    """The format's shape entry: the notes taken while parsing plus how its JSON texts were written."""
    if texts.pairs:
        shape.update(texts.shape())
    return shape
