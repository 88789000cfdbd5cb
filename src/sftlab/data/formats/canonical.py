"""Our own format: ``record.to_dict()`` per line, tagged by ``kind`` (``*.sftlab.jsonl``).

Lossless for every record; this is what stages hand to each other.
"""

from __future__ import annotations

from typing import Any

import orjson

from sftlab.data.formats._common import as_list
from sftlab.data.mapping import Mapping
from sftlab.data.record import Conversation, Record, record_from_dict
from sftlab.data.validate import InvalidRecord

NAME = "sftlab"


def parse(row: dict[str, Any], mapping: Mapping) -> Record:
    kind = row.get("kind")
    if kind not in ("conversation", "text"):
        raise InvalidRecord("wrong_type", f"'kind' must be 'conversation' or 'text', got {kind!r}")
    if kind == "text" and "text" not in row:
        raise InvalidRecord("missing_field", "'text' is missing")
    if kind == "conversation":
        turns = as_list(row.get("turns"), "turns")
        if turns is None:
            raise InvalidRecord("missing_field", "'turns' is missing")
        for i, t in enumerate(turns):
            if not isinstance(t, dict) or "role" not in t:
                raise InvalidRecord("wrong_type", f"turns[{i}] must be an object with a 'role'")
        row = {**row, "turns": turns}
    if isinstance(row.get("meta"), str):  # JSON text in a CSV/Parquet cell
        try:
            row = {**row, "meta": orjson.loads(row["meta"])}
        except orjson.JSONDecodeError:
            raise InvalidRecord("wrong_type", "'meta' is text that is not JSON") from None
    if kind == "conversation":
        if isinstance(row.get("tools"), str):
            row = {**row, "tools": as_list(row["tools"], "tools")}
        if row.get("meta") is not None and not isinstance(row["meta"], dict):
            raise InvalidRecord("wrong_type", "'meta' must be an object")
    try:
        record = record_from_dict(row)
    except (KeyError, TypeError, AttributeError) as exc:
        raise InvalidRecord(
            "wrong_type", f"not a valid sftlab record ({type(exc).__name__}: {exc})"
        ) from None
    if isinstance(record, Conversation) and record.tools is not None and not isinstance(record.tools, list):
        raise InvalidRecord("wrong_type", "'tools' must be a list")
    return record


def dump(record: Record) -> tuple[dict[str, Any] | None, list[str]]:
    return record.to_dict(), []
