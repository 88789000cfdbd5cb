"""Sharded sources: a folder or glob of JSONL / Parquet files read as one source.

Large data sets come as shards (``part-00000.parquet`` …). A source ``path``
that is a folder of data files, or a glob, reads its shards in sorted order as
if they were one file joined end to end: record ids continue across shards
(``<stem>-<line>`` with lines counted over the joined files), an explicit id
seen in an earlier shard is a ``duplicate_id`` in a later one, ``limit``
counts over all shards, and the format detected on the first shard holds for
the rest. Rejected rows keep the location in their own shard (``file:line``)::

    data/train/part-00000.jsonl (3 lines) ┐                ids train-1 … train-3
    data/train/part-00001.jsonl (2 lines) ┴─▶ "train" ──▶  ids train-4, train-5

The stem is the folder's name, or for a glob the file-name pattern before its
first wildcard (``data/chat-*.parquet`` → ``chat``), else the folder it names.

URLs (``s3://bucket/train/*.parquet``) are listed and fetched through
``fsspec`` (installed with ``datasets``) when a filesystem for the scheme is
installed; each shard is copied to a local file before it is read.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp()) / "train"; d.mkdir()
>>> _ = (d / "a.jsonl").write_text('{"instruction": "1?", "output": "1"}\\n')
>>> _ = (d / "b.jsonl").write_text('{"instruction": "2?", "output": "2"}\\n')
>>> [r.meta.id for r in ShardedStream(str(d))]
['train-1', 'train-2']
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sftlab.data import containers
from sftlab.data.io import ReadStats, RecordStream
from sftlab.data.mapping import flatten
from sftlab.data.record import Record
from sftlab.errors import DataError
from sftlab.utils.atomic import atomic_path

SHARD_KINDS = ("jsonl", "parquet")
"""Containers a shard may be: each row stands alone, so shards join without re-framing."""
_WILDCARD = re.compile(r"[*?\[]")


def is_sharded(path: str) -> bool:
    """A glob, a URL, or a local folder of data files (not a saved HF dataset nor a LLaMA-Factory folder)."""
    if "://" in path or _WILDCARD.search(path):
        return True
    p = Path(path)
    return p.is_dir() and not containers.is_saved_dataset(p) and not (p / "dataset_info.json").is_file()


def shard_stem(path: str) -> str:
    """The id stem of a sharded source: the folder name, or a glob's name before its first wildcard.

    >>> shard_stem("data/train/"), shard_stem("data/chat-*.parquet"), shard_stem("s3://b/sft/*.jsonl")
    ('train', 'chat', 'sft')
    """
    path = path.rstrip("/")
    name = path.rsplit("/", 1)[-1]
    match = _WILDCARD.search(name)
    if match is None:
        return name.split(".")[0]
    head = name[: match.start()].strip("-_.")
    if head:
        return head
    parent = path.rsplit("/", 1)[0] if "/" in path else "."
    return shard_stem(parent) if not _WILDCARD.search(parent) else "shards"


def list_shards(path: str) -> list[str]:
    """Every shard of ``path`` in sorted order; one clear line when there is none or one is of another kind."""
    if "://" in path and not path.startswith("file://"):
        found = _remote_list(path)
    else:
        local = path.removeprefix("file://")
        if Path(local).is_dir():
            found = [
                str(p) for p in Path(local).iterdir() if p.is_file() and not p.name.startswith((".", "_"))
            ]
        else:
            found = [p for p in glob.glob(local, recursive=True) if Path(p).is_file()]
    found = sorted(found)
    if not found:
        raise DataError(
            f"{path}: no shards found (a folder of .jsonl / .parquet files, or a glob such as data/**/*.parquet)"
        )
    for name in found:
        kind = next((k for suffix, k in containers.SUFFIXES if name.lower().endswith(suffix)), None)
        if kind not in SHARD_KINDS:
            raise DataError(
                f"{name}: a shard of {path} that is not .jsonl / .jsonl.gz / .parquet; "
                "move it out of the folder or narrow the glob"
            )
    return found


def _fs(url: str):
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with datasets
        raise DataError(f"{url}: reading URLs needs fsspec (pip install fsspec)") from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as err:
        raise DataError(f"{url}: fsspec cannot open this URL ({err})") from None


def _remote_list(url: str) -> list[str]:
    fs, root = _fs(url)
    if _WILDCARD.search(root):
        names = fs.glob(root)
    else:  # a folder: its files, less hidden ones and markers such as _SUCCESS
        entries = fs.ls(root, detail=True)
        names = [e["name"] for e in entries if e.get("type") == "file"]
        names = [n for n in names if not n.rsplit("/", 1)[-1].startswith((".", "_"))]
    return [fs.unstrip_protocol(n) for n in names]


def shard_info(path: str) -> dict[str, Any]:
    """Path, size and modification time: what says a shard is the one a checkpoint was made from."""
    if "://" in path and not path.startswith("file://"):
        fs, root = _fs(path)
        info = fs.info(root)
        return {
            "path": path,
            "size": info.get("size"),
            "mtime": str(info.get("mtime") or info.get("LastModified") or info.get("created")),
        }
    st = os.stat(path.removeprefix("file://"))
    return {"path": path, "size": st.st_size, "mtime": st.st_mtime_ns}


def local_copy(path: str, folder: Path) -> str:
    """A local path to read ``path`` from: itself, or a copy of a URL fetched through fsspec into ``folder``."""
    if "://" not in path or path.startswith("file://"):
        return path.removeprefix("file://")
    fs, root = _fs(path)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / re.sub(r"[^A-Za-z0-9._-]", "_", root.lstrip("/"))
    fs.get(root, str(target))
    return str(target)


def span_of(path: str, stream: RecordStream) -> int:
    """How far a shard moves the index of the next one: lines of a JSONL shard, rows of a Parquet one."""
    if stream.container == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    import gzip

    opener = gzip.open if path.endswith(".gz") else open
    lines, last = 0, b"\n"
    with opener(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")  # a last line without a newline still counts


@dataclass
class SeenIds(set):
    """The explicit ids read so far; remembers which ones the current shard added (``added``)."""

    def __init__(self) -> None:
        super().__init__()
        self.added: list[str] = []

    def add(self, item: str) -> None:
        super().add(item)
        self.added.append(item)


@dataclass
class ShardContext:
    """What reading the earlier shards of a source leaves for the next: index offset, ids, count, format."""

    offset: int = 0
    seen_ids: SeenIds = field(default_factory=SeenIds)
    kept: int = 0
    format: str = "auto"
    ids_digest: str = ""
    """A hash chained over each shard's new ids, so the fingerprint never re-sorts all ids seen so far."""

    def take_ids(self) -> list[str]:
        """The ids the last shard added, chained into ``ids_digest``; starts the next shard's list."""
        added, self.seen_ids.added = self.seen_ids.added, []
        self.note_ids(added)
        return added

    def note_ids(self, ids: list[str]) -> None:
        """Count ``ids`` (a shard's new explicit ids) as seen."""
        self.seen_ids.update(ids)
        self.ids_digest = hashlib.sha256((self.ids_digest + "\n" + "\n".join(ids)).encode()).hexdigest()[:16]

    def key(self) -> dict[str, Any]:
        """The context as part of a shard's checkpoint fingerprint."""
        return {"offset": self.offset, "kept": self.kept, "format": self.format, "ids": self.ids_digest}


class ShardedStream:
    """The records of every shard of one source, in order, with one :class:`ReadStats` over all of them.

    Takes :class:`~sftlab.data.io.RecordStream`'s arguments; ``rejects_path``
    names the source's staged read rejects, one file per shard beside it.
    """

    def __init__(
        self,
        path: str,
        *,
        source_name: str | None = None,
        limit: int | None = None,
        rejects_path: str | Path | None = None,
        **stream_args: Any,
    ):
        self.path = path
        self.shards = list_shards(path)
        self.stem = shard_stem(path)
        self.source_name = source_name
        """``meta.source`` of the records (:func:`sharded_source` names a recipe source after its stem)."""
        self.limit = limit
        self.rejects_path = Path(rejects_path) if rejects_path else None
        self.stream_args = stream_args
        self.format = stream_args.pop("format", "auto")
        self.shard_stats: list[ReadStats] = []
        self.reject_files: list[Path] = []
        self.checkpoints: dict[str, Any] = {}
        """Set by the curation runner: whether shards were checkpointed, and how many were reused."""

    def shard_stream(
        self,
        index: int,
        ctx: ShardContext,
        *,
        rejects_path: Path | None = None,
        local_dir: Path | None = None,
    ) -> RecordStream:
        """Shard ``index`` as a stream that continues ``ctx`` (ids, offset, limit, format).

        A URL shard is first copied into ``local_dir`` (default: a temporary folder).
        """
        name = self.shards[index]
        local = local_copy(name, local_dir or Path(tempfile.gettempdir()) / f"sftlab-shards-{os.getpid()}")
        limit = None if self.limit is None else max(self.limit - ctx.kept, 0)
        fmt = ctx.format if ctx.format != "auto" else self.format
        stream = RecordStream(
            local,
            format=fmt,
            rejects_path=rejects_path,
            limit=limit,
            source_name=self.source_name,
            **self.stream_args,
        )
        stream.stem, stream.id_offset, stream.seen_ids = self.stem, ctx.offset, ctx.seen_ids
        return stream

    def advance(self, ctx: ShardContext, stream: RecordStream, local: str) -> None:
        """Move ``ctx`` past a shard that was read to its end."""
        ctx.offset += span_of(local, stream)
        ctx.kept += stream.stats.kept
        ctx.format = stream.format
        ctx.seen_ids.added.clear()  # only checkpoints need each shard's own ids

    def __iter__(self) -> Iterator[Record]:
        ctx = ShardContext()
        self.shard_stats, self.reject_files = [], []
        parts: list[Path] = []
        stream = None
        try:
            for i in range(len(self.shards)):
                part = self._part(i)
                parts += [part] if part is not None else []
                stream = self.shard_stream(i, ctx, rejects_path=part)
                local = stream.path
                yield from stream
                self.shard_stats.append(stream.stats)
                self.advance(ctx, stream, local)
                stream = None
                if local != self.shards[i].removeprefix("file://"):
                    Path(local).unlink(missing_ok=True)  # a fetched copy of a URL shard
        finally:
            if stream is not None:  # the consumer stopped inside a shard
                self.shard_stats.append(stream.stats)
            self._join_rejects(parts)

    def _part(self, index: int) -> Path | None:
        """Where shard ``index`` stages its rejected rows (beside the source's rejects file)."""
        if self.rejects_path is None:
            return None
        return self.rejects_path.with_name(f"{self.rejects_path.stem}-{index:05d}.jsonl")

    def _join_rejects(self, parts: list[Path]) -> None:
        """One rejects file for the source, as a single file gives: the shards' rows in order."""
        if self.rejects_path is None:
            return
        with atomic_path(self.rejects_path) as tmp, open(tmp, "wb") as out:
            for part in parts:
                if part.is_file():
                    with open(part, "rb") as fh:
                        shutil.copyfileobj(fh, out)
                    part.unlink()
        self.reject_files = [self.rejects_path]

    @property
    def stats(self) -> ReadStats:
        """One source's reading over all shards (format of the first shard that detected one)."""
        total = ReadStats(path=self.path, format=self.format)
        for s in self.shard_stats:
            total.records_in += s.records_in
            total.kept += s.kept
            total.rejected += s.rejected
            total.rejected_by_reason.update(s.rejected_by_reason)
            total.repaired.update(s.repaired)
            if total.format == "auto":
                total.format = s.format
        return total


def sharded_source(
    source: Any, *, on_error: str = "fail", rejects_path: str | Path | None = None, repairs: Any = ()
) -> ShardedStream:
    """A recipe source whose ``path`` is a folder or glob of shards (see :func:`sftlab.data.io.read_source`)."""
    return ShardedStream(
        source.path,
        source_name=source.name or shard_stem(source.path),
        limit=source.limit,
        rejects_path=rejects_path,
        format=source.format,
        mapping=flatten(source.mapping),
        on_error=on_error,
        task=source.task,
        split=source.split,
        substitute=source.substitute,
        repairs=repairs,
    )
