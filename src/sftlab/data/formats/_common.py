"""Helpers shared by the format modules: metadata columns, JSON-in-a-cell, ``<think>`` splitting."""

from __future__ import annotations

from typing import Any

import orjson

from sftlab.data.record import Conversation, Meta, ToolCall
from sftlab.data.validate import InvalidRecord

#: Columns every format maps onto :class:`Meta` (everything unknown goes to ``meta.extra``).
META_COLUMNS = ("id", "source", "task", "label", "provenance")
#: The column that carries ``meta.source_shape`` through files of other formats.
SHAPE_COLUMN = "source_shape"


def take_meta(row: dict[str, Any], known: frozenset[str], fmt: str = "", shape: dict | None = None) -> Meta:
    """Metadata of ``row``: meta columns, plus every column the format does not use as ``extra``.

    ``shape`` is what format ``fmt``'s parser noted about this row; it joins the
    ``source_shape`` entries of other formats that the ``source_shape`` column
    brought along (a row written by sftlab from a record read elsewhere).
    """
    meta = Meta()
    extra: dict[str, Any] = {}
    for key, value in row.items():
        # null cells carry nothing (Parquet and HF datasets pad absent columns with null)
        if key in known or value is None:
            continue
        if key == SHAPE_COLUMN:
            carried = _shape_cell(value)
            if carried is not None:
                meta.source_shape = carried
                continue
            extra[key] = value
        elif key in META_COLUMNS:
            if key == "provenance":
                if isinstance(value, dict):
                    meta.provenance = value
                    continue
                extra[key] = value
            elif isinstance(value, str):
                setattr(meta, key, value)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                setattr(meta, key, str(value))  # numeric ids become strings, the type Meta declares
            else:
                extra[key] = value
        else:
            extra[key] = value
    meta.extra = extra
    if shape:
        meta.source_shape[fmt] = shape
    return meta


def _shape_cell(value: Any) -> dict[str, Any] | None:
    """A ``source_shape`` column as a dict (CSV and Parquet hold it as JSON text); ``None`` if it is not one."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()):
        return dict(value)
    return None


def meta_columns(meta: Meta, written: str | None = None) -> dict[str, Any]:
    """Inverse of :func:`take_meta`: the columns a writer adds next to the format's own.

    The ``written`` format's own ``source_shape`` entry has been used by its
    writer and is left out, so a row written back to its source format has no
    column the source did not have.
    """
    out: dict[str, Any] = {}
    for key in ("id", "source", "task", "label"):
        value = getattr(meta, key)
        if value is not None:
            out[key] = value
    if meta.provenance:
        out["provenance"] = meta.provenance
    out.update(meta.extra)
    if meta.source_shape:
        carried = {k: v for k, v in meta.source_shape.items() if k != written}
        if carried:
            out[SHAPE_COLUMN] = carried
    return out


def as_list(value: Any, what: str) -> list | None:
    """A list field that may arrive as a JSON string (CSV, Parquet, LLaMA-Factory ``tools``)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise InvalidRecord("wrong_type", f"{what} is a string that is not valid JSON ({exc})") from None
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        raise InvalidRecord("wrong_type", f"{what} must be a list, got {type(value).__name__}")
    return value


def optional_str(value: Any, what: str) -> str | None:
    """``None`` for absent/empty, the string otherwise; anything else is ``non_string_content``."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    raise InvalidRecord("non_string_content", f"{what} must be a string, got {type(value).__name__}")


def parse_arguments(value: Any) -> dict[str, Any] | str:
    """Tool-call arguments: a dict when the JSON parses to an object, else the raw string."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
        return parsed if isinstance(parsed, dict) else value
    raise InvalidRecord(
        "bad_tool_call", f"tool-call arguments must be a JSON string or object, got {type(value).__name__}"
    )


def tool_call_from(obj: Any, what: str) -> ToolCall:
    """A tool call given flat (``{name, arguments}``) or OpenAI-style (``{id, function: {...}}``)."""
    if not isinstance(obj, dict):
        raise InvalidRecord("bad_tool_call", f"{what} must be an object, got {type(obj).__name__}")
    fn = obj.get("function") if isinstance(obj.get("function"), dict) else obj
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRecord("bad_tool_call", f"{what} has no function name")
    call_id = obj.get("id")
    return ToolCall(
        name=name,
        arguments=parse_arguments(fn.get("arguments")),
        id=call_id if isinstance(call_id, str) else None,
    )


def weight_of(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise InvalidRecord("wrong_type", f"{what} weight must be a number, got {type(value).__name__}")


def split_think(conv: Conversation, tag: str) -> None:
    """Move a leading ``<tag>…</tag>`` of each assistant answer into ``reasoning`` (in place).

    >>> from sftlab.data.record import Turn
    >>> c = Conversation(turns=[Turn("user", "q"), Turn("assistant", "<think>\\nhmm\\n</think>\\n\\n42")])
    >>> split_think(c, "think"); (c.turns[1].reasoning, c.turns[1].content)
    ('hmm', '42')
    """
    open_, close = f"<{tag}>", f"</{tag}>"
    for turn in conv.turns:
        if turn.role != "assistant" or turn.reasoning is not None:
            continue
        text = turn.content.lstrip()
        if not text.startswith(open_):
            continue
        end = text.find(close)
        if end < 0:
            continue
        turn.reasoning = text[len(open_) : end].strip()
        turn.content = text[end + len(close) :].lstrip()
