"""Containers: how rows are stored on disk, independent of the record format.

Readers yield :class:`RawRow` items one at a time (bounded memory for JSONL,
Parquet, CSV and text): the row as a dict, or the problem that kept it from
being one, plus the raw bytes/row for the rejects file. Writing is in
:mod:`sftlab.data.sinks`.

=========================  ==========================  ===========
container                  recognised by               location
=========================  ==========================  ===========
JSON Lines                 ``.jsonl``/``.ndjson`` (+``.gz``), ``.json`` whose first line is an object   ``file:line``
JSON array                 ``.json`` starting with ``[`` (or ``{"data": [...]}``)   ``file:record N``
Parquet                    ``.parquet``                 ``file:row N``
CSV / TSV                  ``.csv`` / ``.tsv``          ``file:row N`` (data rows, from 1)
text                       ``.txt`` (paragraphs split by blank lines)   ``file:line``
HF dataset on disk         folder from ``save_to_disk``  ``file:row N``
HF hub dataset             ``owner/name`` not on disk  ``name:row N``
=========================  ==========================  ===========
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from sftlab.data.validate import InvalidRecord
from sftlab.errors import DataError


@dataclass(slots=True)
class RawRow:
    """One stored row: ``row`` is set, or ``problem`` says why it is not a usable object."""

    index: int
    raw: Any
    row: dict[str, Any] | None = None
    problem: InvalidRecord | None = None


def is_saved_dataset(folder: Path) -> bool:
    """A folder written by ``datasets``' ``save_to_disk`` (a LLaMA-Factory data folder has only ``dataset_info.json``)."""
    return any((folder / f).exists() for f in ("state.json", "dataset_dict.json"))


SUFFIXES: tuple[tuple[str, str], ...] = (
    (".jsonl.gz", "jsonl"),
    (".jsonl", "jsonl"),
    (".ndjson", "jsonl"),
    (".json", "json"),
    (".parquet", "parquet"),
    (".csv", "csv"),
    (".tsv", "tsv"),
    (".txt", "txt"),
)
"""File name endings and the container each names, longest first where one ends another."""


def container_of(path: str | Path) -> str:
    """``jsonl|json|parquet|csv|tsv|txt|hf_disk|hf_hub`` for a path (or hub name)."""
    p = Path(path)
    if p.is_dir():
        if is_saved_dataset(p):
            return "hf_disk"
        if (p / "dataset_info.json").exists():
            raise DataError(
                f"{path}: a LLaMA-Factory data folder; name the dataset to read with dataset: NAME (recipe) "
                "or --dataset NAME (CLI)"
            )
        raise DataError(
            f"{path}: a folder that is not a saved Hugging Face dataset (no state.json/dataset_dict.json)"
        )
    name = p.name.lower()
    for suffix, kind in SUFFIXES:
        if name.endswith(suffix):
            if not p.exists():
                raise DataError(f"{path}: file not found")
            return kind
    if (
        not p.exists()
        and "/" in str(path)
        and str(path).count("/") == 1
        and not str(path).startswith((".", "/"))
    ):
        return "hf_hub"
    if not p.exists():
        raise DataError(f"{path}: file not found")
    raise DataError(
        f"{path}: unknown file type; use .jsonl, .json, .parquet, .csv, .tsv, .txt or a saved HF dataset folder"
    )


def unit_of(container: str) -> str:
    """How locations are written: ``line``, ``record`` or ``row``."""
    return {"jsonl": "line", "txt": "line", "json": "record"}.get(container, "row")


def _decode_problem(line: bytes, exc: Exception) -> InvalidRecord:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as uexc:
        return InvalidRecord("invalid_utf8", f"invalid UTF-8 at byte {uexc.start} of the line")
    return InvalidRecord("malformed_json", f"not valid JSON ({exc})")


def _object(obj: Any, index: int, raw: Any) -> RawRow:
    if isinstance(obj, dict):
        return RawRow(index, raw, obj)
    return RawRow(
        index,
        raw,
        problem=InvalidRecord("not_an_object", f"expected a JSON object, got {type(obj).__name__}"),
    )


def read_jsonl(path: str | Path) -> Iterator[RawRow]:
    """One row per non-blank line; each line decoded on its own so one bad line is one bad record."""
    opener = gzip.open if str(path).endswith(".gz") else open
    loads, err = orjson.loads, orjson.JSONDecodeError
    with opener(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = loads(line)
            except err as exc:
                yield RawRow(lineno, line, problem=_decode_problem(line, exc))
                continue
            if type(obj) is dict:
                yield RawRow(lineno, line, obj)
            else:
                yield _object(obj, lineno, line)


def _first_line_is_object(path: Path) -> bool:
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                try:
                    return isinstance(orjson.loads(line), dict)
                except orjson.JSONDecodeError:
                    return False
    return False


def read_json(path: str | Path) -> Iterator[RawRow]:
    """A JSON array (or an object holding one list); a ``.json`` that is really JSONL is read as JSONL."""
    path = Path(path)
    if _first_line_is_object(path):
        yield from read_jsonl(path)
        return
    data = path.read_bytes()
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as uexc:
            raise DataError(
                f"{path}: invalid UTF-8 at byte {uexc.start}; the whole JSON array is unreadable (re-save it as UTF-8)"
            ) from None
        raise DataError(
            f"{path}: not valid JSON ({exc}); one record per line (.jsonl) lets sftlab skip bad records"
        ) from None
    if isinstance(obj, dict):
        lists = [v for v in obj.values() if isinstance(v, list)]
        if obj and all(isinstance(v, dict) for v in obj.values()):
            raise DataError(
                f"{path}: a LLaMA-Factory dataset_info.json (datasets {', '.join(list(obj)[:5])}); name the "
                "dataset to read with dataset: NAME (recipe) or --dataset NAME (CLI)"
            )
        if len(lists) != 1:
            raise DataError(f"{path}: a JSON object, not an array of records (keys {sorted(obj)[:10]})")
        obj = lists[0]
    if not isinstance(obj, list):
        raise DataError(f"{path}: expected a JSON array of records, got {type(obj).__name__}")
    for i, item in enumerate(obj, 1):
        yield _object(item, i, item)


def read_parquet(path: str | Path, batch_size: int = 1024) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    index = 0
    for batch in pf.iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            index += 1
            yield RawRow(index, row, row)


def read_csv(path: str | Path, delimiter: str = ",") -> Iterator[RawRow]:
    """Rows as dicts of strings (empty cell = ``None``); nested columns arrive as JSON text."""
    with open(path, "rb") as raw_fh:
        fh = io.TextIOWrapper(raw_fh, encoding="utf-8", newline="")
        reader = csv.DictReader(fh, delimiter=delimiter)
        index = 0
        try:
            for row in reader:
                index += 1
                if None in row:  # more cells than header names
                    yield RawRow(
                        index,
                        row,
                        problem=InvalidRecord(
                            "wrong_type", f"{len(row[None])} cells more than the header has"
                        ),
                    )
                    continue
                # an empty cell is a missing value: CSV cannot tell "" from null
                yield RawRow(index, row, {k: (v if v != "" else None) for k, v in row.items()})
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{path}:row {index + 1}: invalid UTF-8 (byte {exc.start} of a read block); re-save the CSV as UTF-8"
            ) from None
        except csv.Error as exc:
            raise DataError(f"{path}:row {index + 1}: broken CSV ({exc})") from None


def read_txt(path: str | Path) -> Iterator[RawRow]:
    """One ``{"text": ...}`` per paragraph (blank-line separated); index = first line of the paragraph."""
    with open(path, "rb") as fh:
        start, lines = 0, []
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                if not lines:
                    start = lineno
                lines.append(line)
                continue
            if lines:
                yield _paragraph(start, lines)
                lines = []
        if lines:
            yield _paragraph(start, lines)


def _paragraph(start: int, lines: list[bytes]) -> RawRow:
    raw = b"".join(lines)
    try:
        text = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        return RawRow(
            start,
            raw,
            problem=InvalidRecord("invalid_utf8", f"invalid UTF-8 at byte {exc.start} of the paragraph"),
        )
    return RawRow(start, raw, {"text": text})


def read_hf(path: str, *, split: str | None, on_disk: bool) -> Iterator[RawRow]:
    """A dataset saved with ``save_to_disk`` or a hub name; offline hub use fails with one line."""
    import datasets

    try:
        ds = datasets.load_from_disk(path) if on_disk else datasets.load_dataset(path, split=split or "train")
    except Exception as exc:  # datasets raises many types; the user needs one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = "folder" if on_disk else "hub dataset (no network, or not in the local HF cache?)"
        raise DataError(f"{path}: cannot load the {where}: {first}") from None
    if isinstance(ds, datasets.DatasetDict):
        name = split or ("train" if "train" in ds else next(iter(ds)))
        if name not in ds:
            raise DataError(f"{path}: no split '{name}'; splits: {', '.join(ds)}")
        ds = ds[name]
    for i, row in enumerate(ds, 1):
        yield RawRow(i, row, row)


def read_rows(path: str | Path, container: str, *, split: str | None = None) -> Iterator[RawRow]:
    """Rows of ``path`` stored as ``container`` (see :func:`container_of`)."""
    if container == "jsonl":
        return read_jsonl(path)
    if container == "json":
        return read_json(path)
    if container == "parquet":
        return read_parquet(path)
    if container in ("csv", "tsv"):
        return read_csv(path, "\t" if container == "tsv" else ",")
    if container == "txt":
        return read_txt(path)
    return read_hf(str(path), split=split, on_disk=container == "hf_disk")
