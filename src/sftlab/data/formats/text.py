"""Plain text for continued pre-training: a ``text`` column.

``.txt`` files are read as one record per paragraph: records are separated by
one or more blank lines (see :mod:`sftlab.data.containers`). Conversations
cannot be written as text (skipped and counted), so no chat is flattened by
accident.
"""

from __future__ import annotations

from typing import Any

from sftlab.data.formats._common import meta_columns, take_meta
from sftlab.data.mapping import Mapping
from sftlab.data.record import Record, TextRecord
from sftlab.data.validate import InvalidRecord, require_str

NAME = "text"
KNOWN = frozenset({"text"})


def parse(row: dict[str, Any], mapping: Mapping) -> Record:
    if row.get("text") is None:
        raise InvalidRecord(
            "missing_field", "'text' is missing (map another column with mapping: {text: ...})"
        )
    return TextRecord(text=require_str(row["text"], "text"), meta=take_meta(row, KNOWN))


def dump(record: Record) -> tuple[dict[str, Any] | None, list[str]]:
    if not isinstance(record, TextRecord):
        return None, ["conversation_not_text"]
    meta = meta_columns(record.meta)
    row: dict[str, Any] = {"id": meta.pop("id")} if "id" in meta else {}
    row["text"] = record.text
    row.update(meta)
    return row, []
