"""All of a recipe's training sources as one stream, with the reading itself accounted as a step.

Reading is where most records are lost on real data (an assistant speaking
first, an unknown role, a malformed line), so it is counted like any curation
step: ``read`` has lines in, records out, and rejections per reason. The
curation runner puts it first in its steps and copies its rejects into
``rejects.jsonl``, so ``lines read = kept + rejected`` holds over the files
themselves::

    a.jsonl (900 lines) ─┐                    read: in 1,000  out 940  (assistant_first 50, unknown_role 10)
    b.jsonl (100 lines) ─┴─▶ SourceSet ──940──▶ normalize ─▶ filters ─▶ ...

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "a.jsonl").write_text('{"instruction": "hi", "output": "hello"}\\n{"instruction": "x"}\\n')
>>> from sftlab.data.io import read_records
>>> sources = SourceSet([read_records(d / "a.jsonl", on_error="skip", rejects_path=d / "r.jsonl")])
>>> len(list(sources)), sources.step_stats().to_dict()["rejected_by_reason"]
(1, {'missing_field': 1})
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from sftlab.curate.steps.base import StepStats
from sftlab.data.io import ReadStats, RecordStream, read_source
from sftlab.data.record import Record
from sftlab.data.shards import ShardedStream
from sftlab.errors import DataError

if TYPE_CHECKING:
    from sftlab.recipe.sections.data import DataSection

READ_STEP = "read"
EXAMPLES_PER_REASON = 3


class SourceSet:
    """An iterable of the records of several :class:`RecordStream` s, one after the other.

    Each iteration re-reads every source; after it, :meth:`step_stats` sums the
    sources' :class:`ReadStats` and :meth:`reject_rows` yields their rejected
    lines as ``rejects.jsonl`` rows (``step: read``, reason, detail, location, raw).
    """

    def __init__(self, streams: list[RecordStream | ShardedStream]):
        self.streams = streams

    def __iter__(self) -> Iterator[Record]:
        for stream in self.streams:
            yield from stream

    @property
    def stats(self) -> list[ReadStats]:
        return [s.stats for s in self.streams]

    def step_stats(self) -> StepStats:
        """The ``read`` step: lines read in, records out, rejections per reason."""
        step = StepStats(step=READ_STEP)
        repaired: Counter = Counter()
        for stats in self.stats:
            step.records_in += stats.records_in
            step.kept += stats.kept
            step.rejected.update(stats.rejected_by_reason)
            repaired.update(stats.repaired)
        step.edited = sum(repaired.values())  # kept after a repair (data.repair)
        step.details["repaired"] = dict(repaired)
        step.details["sources"] = [s.to_dict() for s in self.stats]
        if shards := _shard_details(self.streams):
            step.details["shards"] = shards
        for row in self.reject_rows():
            examples = step.examples.setdefault(row["reason"], [])
            if len(examples) < EXAMPLES_PER_REASON:
                examples.append({"id": row["location"], "detail": row["detail"], "text": _short(row["raw"])})
        return step

    def reject_rows(self) -> Iterator[dict[str, Any]]:
        """Every line the sources rejected, in the rejects-file shape of the curation runner."""
        for stream in self.streams:
            for path in _reject_files(stream):
                if path.is_file():
                    yield from _reject_rows(path, stream.source_name)

    def discard_reject_files(self) -> None:
        """Remove the per-source rejects files once their rows are merged elsewhere.

        Files in a checkpoint folder (:mod:`sftlab.curate.resume`) stay until the outputs are published.
        """
        for stream in self.streams:
            if not getattr(stream, "checkpoints", {}).get("enabled"):
                for path in _reject_files(stream):
                    path.unlink(missing_ok=True)


def _reject_files(stream: RecordStream | ShardedStream) -> list[Path]:
    """A sharded source stages one rejects file per shard."""
    if isinstance(stream, ShardedStream):
        return list(stream.reject_files)
    return [stream.rejects_path] if stream.rejects_path is not None else []


def _shard_details(streams: list[RecordStream | ShardedStream]) -> list[dict[str, Any]]:
    """Per sharded source: shards read, shards reused from checkpoints, and whether checkpoints were kept."""
    return [
        {"source": s.source_name, "path": s.path, "shards": len(s.shards), **s.checkpoints}
        for s in streams
        if isinstance(s, ShardedStream)
    ]


def _reject_rows(path: Path, source_name: str | None) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as fh:
        for line in fh:
            bad = orjson.loads(line)
            yield {
                "step": READ_STEP,
                "reason": bad["reason"],
                "detail": bad["message"],
                "location": bad["location"],
                "source": source_name,
                "raw": bad["raw"],
            }


def _short(raw: Any, limit: int = 300) -> str:
    text = raw if isinstance(raw, str) else orjson.dumps(raw, default=str).decode()
    return text if len(text) <= limit else text[:limit] + "…"


def read_sources(data: DataSection, staging_dir: str | Path) -> SourceSet:
    """The recipe's ``data.sources`` as a :class:`SourceSet`.

    With ``data.on_error: skip`` each source's rejected lines are staged in
    ``staging_dir`` (``.read_rejects_<i>.jsonl``) for the runner to merge.
    """
    if not data.sources:
        raise DataError("data.sources is empty: add at least one source (- path: train.jsonl)")
    skip = data.on_error == "skip"
    staging_dir = Path(staging_dir)
    return SourceSet(
        [
            read_source(
                src,
                on_error=data.on_error,
                rejects_path=staging_dir / f".read_rejects_{i}.jsonl" if skip else None,
                repairs=data.repair,
            )
            for i, src in enumerate(data.sources)
        ]
    )
