"""Reading and writing records: any supported file in, canonical records out, and back.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "a.jsonl").write_text('{"instruction": "2+2?", "input": "", "output": "4"}\\n')
>>> stream = read_records(d / "a.jsonl")
>>> [r.turns[-1].content for r in stream], stream.format, stream.stats.kept
(['4'], 'alpaca', 1)
>>> write_records(stream, d / "b.jsonl", format="sharegpt").written
1

Every record read is either kept or rejected with a reason (``records_in ==
kept + rejected``): ``on_error="fail"`` raises :class:`DataError` at the first
bad record naming ``file:line``; ``"skip"`` writes it verbatim to the rejects
file and goes on.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from sftlab.data import containers, sinks
from sftlab.data.detect import detect_format
from sftlab.data.formats import get_format
from sftlab.data.formats._common import split_think
from sftlab.data.llamafactory import resolve_source
from sftlab.data.mapping import Mapping
from sftlab.data.record import Conversation, Record, record_from_dict
from sftlab.data.repair import check_repairs, repair
from sftlab.data.substitute import substituter
from sftlab.data.validate import InvalidRecord
from sftlab.errors import DataError
from sftlab.utils.atomic import atomic_path, remove_stale

if TYPE_CHECKING:
    from sftlab.data.shards import ShardedStream
    from sftlab.recipe.sections.data import SourceSection

OnError = Literal["fail", "skip"]


@dataclass
class ReadStats:
    """What happened while reading one source; filled as the stream is consumed."""

    records_in: int = 0
    kept: int = 0
    rejected: int = 0
    rejected_by_reason: Counter = field(default_factory=Counter)
    repaired: Counter = field(default_factory=Counter)
    """Records kept after a repair (``data.repair``), per repair."""
    path: str = ""
    format: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "in": self.records_in,
            "kept": self.kept,
            "rejected": self.rejected,
            "rejected_by_reason": dict(self.rejected_by_reason),
            "repaired": dict(self.repaired),
        }


@dataclass
class WriteStats:
    """What a writer wrote, skipped (whole records) and dropped (fields the format cannot hold)."""

    records_in: int = 0
    written: int = 0
    skipped: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    path: str = ""
    format: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "in": self.records_in,
            "written": self.written,
            "skipped": dict(self.skipped),
            "dropped": dict(self.dropped),
        }


class RecordStream:
    """An iterable of records from one file; each iteration re-reads the file and resets ``stats``.

    ``format`` is the detected (or given) format, known after the first row has
    been read (or after :meth:`peek_format`).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        format: str = "auto",
        mapping: Mapping | dict[str, Any] | None = None,
        on_error: OnError = "fail",
        rejects_path: str | Path | None = None,
        source_name: str | None = None,
        task: str | None = None,
        limit: int | None = None,
        split: str | None = None,
        substitute: dict[str, str] | None = None,
        repairs: Sequence[str] = (),
    ):
        if on_error not in ("fail", "skip"):
            raise DataError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
        self.path = str(path)
        self.container = containers.container_of(path)
        self.mapping = Mapping.parse(mapping)
        if format == "auto" and self.mapping.format_hint():
            format = self.mapping.format_hint()
        if format != "auto":
            get_format(format)  # fail early on a bad name
        self.format = format
        self.on_error = on_error
        self.rejects_path = Path(rejects_path) if rejects_path else None
        self.source_name = source_name
        self.task = task
        self.limit = limit
        self.split = split
        self.substitute = substituter(substitute) if substitute else None
        check_repairs(repairs)
        self.repairs = tuple(repairs)
        self.stem = (
            Path(self.path.rstrip("/")).name.split(".")[0]
            if self.container != "hf_hub"
            else self.path.split("/")[-1]
        )
        self.stats = ReadStats(path=self.path, format=format)
        self.id_offset = 0
        """Added to the index in generated ids: a later shard continues its source's ids (:mod:`sftlab.data.shards`)."""
        self.seen_ids: set[str] | None = None
        """Explicit ids of the earlier shards of a sharded source (a fresh set per iteration when ``None``)."""

    def peek_format(self) -> str:
        """Detect the format from the first usable row without consuming the stream."""
        if self.format == "auto":
            for item in containers.read_rows(self.path, self.container, split=self.split):
                if item.row:
                    self.format = detect_format(self.mapping.rename_columns(item.row), where=self.path)
                    break
            else:
                raise DataError(
                    f"{self.path}: no readable records to detect the format from; pass --from FORMAT"
                )
        self.stats.format = self.format
        return self.format

    def _where(self, index: int) -> str:
        unit = containers.unit_of(self.container)
        return f"{self.path}:{index}" if unit == "line" else f"{self.path}:{unit} {index}"

    def __iter__(self) -> Iterator[Record]:
        self.stats = ReadStats(path=self.path, format=self.format)
        rejects = _Rejects(self.rejects_path) if self.rejects_path else None
        ok = False
        try:
            yield from self._records(rejects)
            ok = True
        except GeneratorExit:
            ok = True  # the consumer stopped early (e.g. a limit); keep what was rejected so far
            raise
        finally:
            if rejects:
                rejects.close(commit=ok)

    def _records(self, rejects: _Rejects | None) -> Iterator[Record]:
        stats, mapping = self.stats, self.mapping
        rename = None if mapping.is_identity else mapping.rename_columns
        fmt = None if self.format == "auto" else get_format(self.format)
        think = mapping.reasoning_tag
        seen_ids: set[str] = self.seen_ids if self.seen_ids is not None else set()
        stem, source, task, limit = self.stem, self.source_name, self.task, self.limit
        for item in containers.read_rows(self.path, self.container, split=self.split):
            if limit is not None and stats.kept >= limit:
                break
            stats.records_in += 1
            try:
                if item.problem is not None:
                    raise item.problem
                row = rename(item.row) if rename else item.row
                if fmt is None:
                    self.format = stats.format = detect_format(row, where=self._where(item.index))
                    fmt = get_format(self.format)
                record = fmt.parse(row, mapping)
                if think and isinstance(record, Conversation):
                    split_think(record, think)
                if self.substitute is not None:
                    self.substitute(record)
                record, repaired = repair(record, self.repairs)
                for name in repaired:
                    stats.repaired[name] += 1
                meta = record.meta
                if meta.id is None:
                    meta.id = f"{stem}-{item.index + self.id_offset}"
                elif meta.id in seen_ids:
                    raise InvalidRecord("duplicate_id", f"id {meta.id!r} appears more than once")
                else:
                    seen_ids.add(meta.id)
                if meta.source is None and source is not None:
                    meta.source = source
                if meta.task is None and task is not None:
                    meta.task = task
            except InvalidRecord as bad:
                where = self._where(item.index)
                if self.on_error == "fail":
                    raise DataError(
                        f"{where}: {bad.reason}: {bad.message} (use --on-error skip / data.on_error: skip to set bad records aside)"
                    ) from None
                stats.rejected += 1
                stats.rejected_by_reason[bad.reason] += 1
                if rejects:
                    rejects.add(bad, where, item.raw)
                continue
            stats.kept += 1
            yield record


class _Rejects:
    """The rejects file: each bad record verbatim with reason and location, written atomically."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(path)  # what a killed reader left
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self.fh = open(self.tmp, "wb")  # noqa: SIM115 - lives as long as the stream's iteration

    def add(self, bad: InvalidRecord, where: str, raw: Any) -> None:
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                raw = raw.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
        row = {"reason": bad.reason, "message": bad.message, "location": where, "raw": raw}
        self.fh.write(orjson.dumps(row, default=str) + b"\n")

    def close(self, *, commit: bool) -> None:
        self.fh.close()
        if commit:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def read_records(
    path: str | Path,
    *,
    format: str = "auto",
    mapping: Mapping | dict[str, Any] | None = None,
    on_error: OnError = "fail",
    rejects_path: str | Path | None = None,
    source_name: str | None = None,
    task: str | None = None,
    limit: int | None = None,
    split: str | None = None,
) -> RecordStream | ShardedStream:
    """Records of one file (or HF dataset, or folder/glob of shards), validated; see :class:`RecordStream`."""
    from sftlab.data import shards  # imports this module

    options = dict(format=format, mapping=mapping, on_error=on_error, rejects_path=rejects_path,
                   source_name=source_name, task=task, limit=limit, split=split)  # fmt: skip
    if shards.is_sharded(str(path)):
        return shards.ShardedStream(str(path), **options)
    return RecordStream(path, **options)


def read_source(
    source: SourceSection,
    *,
    on_error: OnError = "fail",
    rejects_path: str | Path | None = None,
    repairs: Sequence[str] = (),
) -> RecordStream | ShardedStream:
    """A recipe ``data.sources[]`` entry as a stream; ``meta.source`` defaults to the dataset entry or file stem.

    A source naming a ``dataset`` of a LLaMA-Factory ``dataset_info.json`` reads
    that entry's file with its format and columns (:mod:`sftlab.data.llamafactory`); a folder or
    glob of shards reads as one source (:mod:`sftlab.data.shards`).
    """
    from sftlab.data import shards  # imports this module

    if source.dataset is None and shards.is_sharded(source.path):
        return shards.sharded_source(source, on_error=on_error, rejects_path=rejects_path, repairs=repairs)
    where = resolve_source(source)
    stream = RecordStream(
        where.path,
        format=where.format,
        mapping=where.mapping,
        on_error=on_error,
        rejects_path=rejects_path,
        task=source.task,
        limit=where.limit,
        split=where.split,
        substitute=source.substitute,
        repairs=repairs,
    )
    stream.source_name = where.name or stream.stem
    return stream


def write_records(
    records: Iterable[Record],
    path: str | Path,
    *,
    format: str = "messages",
    on_skip: Callable[[Record, str], None] | None = None,
    allow_empty: bool = True,
) -> WriteStats:
    """Write ``records`` in ``format`` to ``path`` (container from the extension), atomically.

    Records the format cannot hold are skipped (and handed to ``on_skip`` with
    the reason) and fields it cannot hold are dropped; both are counted per
    reason in the returned :class:`WriteStats`. With ``allow_empty=False`` a run
    that writes nothing raises :class:`DataError` and leaves ``path`` as it was.
    """
    fmt = get_format(format)
    kind = sinks.sink_kind(path)
    stats = WriteStats(path=str(path), format=format)
    dump = fmt.dump
    with atomic_path(path) as tmp:
        sink = sinks.SINKS[kind](tmp)
        try:
            for record in records:
                stats.records_in += 1
                row, reasons = dump(record)
                if row is None:
                    stats.skipped[reasons[0]] += 1
                    if on_skip is not None:
                        on_skip(record, reasons[0])
                    continue
                for reason in reasons:
                    stats.dropped[reason] += 1
                sink.write(row)
                stats.written += 1
        finally:
            sink.close()
        if not allow_empty and stats.written == 0:
            reasons = ", ".join(f"{k} {v}" for k, v in stats.skipped.most_common()) or "no records were read"
            raise DataError(f"{path}: nothing to write as {format} ({reasons}); the file was not written")
    return stats


def load_jsonl_records(path: str | Path) -> list[Record]:
    """All records of a canonical ``*.sftlab.jsonl`` file (written by :func:`save_jsonl_records`)."""
    out: list[Record] = []
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(record_from_dict(orjson.loads(line)))
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(
                    f"{path}:{lineno}: not a canonical sftlab record ({exc}); was it written by sftlab?"
                ) from None
    return out


def save_jsonl_records(records: Iterable[Record], path: str | Path) -> int:
    """Write records in the canonical format, atomically; returns the count."""
    return write_records(records, path, format="sftlab").written


__all__ = [
    "ReadStats",
    "RecordStream",
    "WriteStats",
    "load_jsonl_records",
    "read_records",
    "read_source",
    "save_jsonl_records",
    "write_records",
]
