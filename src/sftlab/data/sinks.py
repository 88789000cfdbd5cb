"""Sinks: rows written as JSON Lines, a JSON array, CSV/TSV or Parquet, inside an atomic write.

The writing half of :mod:`sftlab.data.containers`: :func:`sink_kind` picks the
sink from the file extension; every sink has ``write(row)`` and ``close()``.
CSV and Parquet need every row's columns before the first row is written, so
they spool rows to a JSONL file first.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from sftlab.errors import DataError


def _dumps(row: Any) -> bytes:
    try:
        return orjson.dumps(row)
    except TypeError:  # ints beyond 64 bits and other rarities: the stdlib copes
        import json

        return json.dumps(row, ensure_ascii=False, default=str).encode()


class JsonlSink:
    """One JSON object per line, streamed."""

    def __init__(self, path: Path):
        self.fh = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed by close()

    def write(self, row: dict[str, Any]) -> None:
        self.fh.write(_dumps(row) + b"\n")

    def close(self) -> None:
        self.fh.close()


class JsonArraySink(JsonlSink):
    """A JSON array written element by element (bounded memory)."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.first = True
        self.fh.write(b"[")

    def write(self, row: dict[str, Any]) -> None:
        self.fh.write((b"\n" if self.first else b",\n") + _dumps(row))
        self.first = False

    def close(self) -> None:
        self.fh.write(b"\n]\n")
        self.fh.close()


class _TwoPassSink:
    """Rows are spooled to a JSONL file first, since the header/schema needs every row's columns."""

    def __init__(self, path: Path):
        self.path = path
        self.spool_path = path.with_name(path.name + ".spool")
        self.spool = open(self.spool_path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed by close()
        self.columns: dict[str, None] = {}

    def write(self, row: dict[str, Any]) -> None:
        for key in row:
            if key not in self.columns:
                self.columns[key] = None
        self.spool.write(_dumps(row) + b"\n")

    def _spooled(self) -> Iterator[dict[str, Any]]:
        with open(self.spool_path, "rb") as fh:
            for line in fh:
                yield orjson.loads(line)

    def close(self) -> None:
        self.spool.close()
        try:
            self._finish()
        finally:
            os.unlink(self.spool_path)


def _cell(value: Any) -> Any:
    """Nested values (lists, dicts) go into a flat cell as JSON text."""
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return value


class CsvSink(_TwoPassSink):
    delimiter = ","

    def _finish(self) -> None:
        with open(self.path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(self.columns), delimiter=self.delimiter)
            writer.writeheader()
            for row in self._spooled():
                writer.writerow({k: _cell(v) for k, v in row.items()})


class TsvSink(CsvSink):
    delimiter = "\t"


#: Columns stored as JSON text in Parquet: their objects have free-form keys (tool schemas, tool-call
#: arguments in canonical turns) that Arrow structs would pad with nulls.
_JSON_TEXT_COLUMNS = frozenset({"tools", "provenance", "turns"})


class ParquetSink(_TwoPassSink):
    """Native nested columns where Arrow can type them; the schema is unified over all rows."""

    batch_size = 2048

    def _batches(self) -> Iterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        for row in self._spooled():
            batch.append({c: self._value(c, row.get(c)) for c in self.columns})
            if len(batch) >= self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _value(self, column: str, value: Any) -> Any:
        if column in self.text_cols and value is not None and not isinstance(value, str):
            return _cell(value) if isinstance(value, list | dict) else str(value)
        return _cell(value) if column in self.json_cols else value

    def _finish(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        # free-form dict columns (meta extras, tool definitions) become JSON text; lists of turns stay nested
        self.json_cols = set(_JSON_TEXT_COLUMNS)
        self.text_cols: set[str] = set()  # columns of mixed scalar types, stored as text (like CSV)
        for row in self._spooled():
            self.json_cols.update(k for k, v in row.items() if isinstance(v, dict))
        schema = self._schema(pa)
        if schema is None:
            schema = pa.schema([(c, pa.string()) for c in self.columns])
        with pq.ParquetWriter(self.path, schema) as writer:
            for batch in self._batches():
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))

    def _schema(self, pa):
        """One schema for all rows; a column whose types cannot be unified (int here, text there) becomes text."""
        while True:
            schema = None
            batch: list[dict[str, Any]] = []
            try:
                for batch in self._batches():
                    s = pa.Table.from_pylist(batch).schema
                    schema = (
                        s if schema is None else pa.unify_schemas([schema, s], promote_options="permissive")
                    )
                return schema
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                bad = self._culprits(pa, exc, batch)
                if not bad:
                    raise
                self.text_cols.update(bad)

    def _culprits(self, pa, exc: Exception, batch: list[dict[str, Any]]) -> list[str]:
        """Columns to store as text: those the error names, else those Arrow cannot type alone, else all."""
        candidates = [c for c in self.columns if c not in self.text_cols]
        named = [c for c in candidates if f"'{c}'" in str(exc) or f"Field {c} " in str(exc)]
        if named:
            return named
        alone = []
        for c in candidates:  # e.g. message content that is text in one row and a list of parts in another
            try:
                pa.array([row.get(c) for row in batch])
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                alone.append(c)
        return alone or candidates


SINKS = {"jsonl": JsonlSink, "json": JsonArraySink, "csv": CsvSink, "tsv": TsvSink, "parquet": ParquetSink}


def sink_kind(path: str | Path) -> str:
    """Which sink writes ``path``, from its extension."""
    from sftlab.data.containers import SUFFIXES

    name = Path(path).name.lower()
    for suffix, kind in SUFFIXES:
        if name.endswith(suffix):
            if kind not in SINKS or suffix.endswith(".gz"):
                break  # readable, but not a file type sftlab writes
            return kind
    raise DataError(f"{path}: cannot write this file type; use .jsonl, .json, .parquet, .csv or .tsv")
