"""Crash and resume over sharded input: the per-record phase checkpointed one input shard at a time.

With a source that is a folder or glob of shards (:mod:`sftlab.data.shards`),
the first part of a local curation — reading and the record steps before the
first global step — runs shard by shard, each shard's results kept in a work
folder beside the outputs::

    <out_dir>.work/
      0-00000/        kept.jsonl  rejects.jsonl  read_rejects.jsonl  lengths.u32  stats.json
      0-00000.done    {"fingerprint": ...}            written last, after the folder is complete

A shard's files are written into a temporary folder, fsynced and renamed, and
only then is its completion marker written. A re-run reuses a shard whose
marker names the same fingerprint — the shard (path, size, mtime), the record
steps' configs, the reading options, and what the earlier shards of its source
left (id offset, explicit ids, count, format) — and processes the others again;
a folder without its marker (a kill mid-shard) is never read. The remaining
steps then run over the shards' kept records, so the outputs equal those of an
uninterrupted run. The runner removes the work folder once it has published.

Step stats are stored per shard and summed (:mod:`sftlab.curate.shard_stats`);
a resumed process first runs shard 0 through the record steps once, results
dropped, so that values a step sets once per process (decontaminate's index
sizes) are not counted twice. A step whose settings cannot be written down
stably (an object without a readable form) is never reused from a checkpoint:
its shards run again. Non-sharded sources of the same recipe are read again on
every run.

For tests only: ``SFTLAB_TEST_CRASH_AFTER_SHARDS=k`` SIGKILLs the process right
after it has completed k shards.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from sftlab.curate import shard_stats
from sftlab.curate.executors.local import LocalExecutor
from sftlab.curate.result import CurationResult, Profile
from sftlab.curate.steps.base import Decision, RecordStep, Step, StepStats
from sftlab.data.io import RecordStream
from sftlab.data.record import Record, record_from_dict
from sftlab.data.shards import ShardContext, ShardedStream, shard_info, span_of
from sftlab.data.sources import SourceSet
from sftlab.utils.hashing import fingerprint

CRASH_ENV = "SFTLAB_TEST_CRASH_AFTER_SHARDS"


def work_dir(out_dir: Path) -> Path:
    """Where a curation into ``out_dir`` keeps its per-shard checkpoints."""
    return out_dir.with_name(out_dir.name + ".work")


def remove_work(out_dir: Path) -> None:
    """Drop the checkpoints once the outputs they led to are published."""
    shutil.rmtree(work_dir(out_dir), ignore_errors=True)


def checkpoints_for(records: Any, steps: list[Step], out_dir: Path, executor: Any) -> ShardCheckpoints | None:
    """Checkpoints when ``records`` has a sharded source and the executor is local; ``None`` otherwise.

    Other executors run without checkpoints, which the read step's details say.
    """
    if not isinstance(records, SourceSet):
        return None
    sharded = [s for s in records.streams if isinstance(s, ShardedStream)]
    if not sharded:
        return None
    if getattr(executor, "name", "") != "local":
        for s in sharded:
            s.checkpoints = {"checkpoints": f"off (executor {executor.name} runs without them)"}
        return None
    return ShardCheckpoints(records, steps, out_dir)


def reject_line(step_name: str, decision: Decision) -> str:
    """A ``rejects.jsonl`` row, written exactly as the runner writes it."""
    row = {
        "step": step_name,
        "reason": decision.reason,
        "detail": decision.detail,
        "record": decision.record.to_dict(),
    }
    return json.dumps(row, ensure_ascii=False, default=str) + "\n"


@dataclass
class _Unit:
    """One input shard (or a whole non-sharded source) of the per-record phase."""

    source: int
    index: int
    stream: RecordStream | ShardedStream

    @property
    def key(self) -> str:
        return f"{self.source}-{self.index:05d}"


class ShardCheckpoints:
    """Runs reading + the leading record steps per input shard, reusing shards completed by an earlier run."""

    def __init__(self, sources: SourceSet, steps: list[Step], out_dir: Path):
        n = next((i for i, s in enumerate(steps) if not isinstance(s, RecordStep)), len(steps))
        self.sources, self.leading, self.rest = sources, steps[:n], steps[n:]
        self.work = work_dir(Path(out_dir))
        self.steps_key = _steps_key(self.leading)
        self.totals = [StepStats(step=s.name) for s in self.leading]
        self.kept_files: list[Path] = []
        self.completed = 0
        self.reused_state = False  # a reused shard carries state the record steps keep (their details)
        self.primed = False
        self.crash_after = int(os.environ.get(CRASH_ENV) or 0)

    def run(
        self, result: CurationResult, rejects_fh: IO[str], before: Profile, counter: list[int]
    ) -> tuple[Iterator[Record], list[Step]]:
        """Process or reuse every shard; returns the records that reach the first global step, and the steps left.

        The leading steps' rejects go to ``rejects_fh`` now (counted in ``result``),
        their stats to ``result.steps``; ``before`` and ``counter`` get what reading yielded.
        """
        self.work.mkdir(parents=True, exist_ok=True)
        for stale in self.work.glob(".*.tmp"):  # what a killed run was writing
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink()
        for i, stream in enumerate(self.sources.streams):
            if isinstance(stream, ShardedStream):
                self._sharded_source(i, stream, result, rejects_fh, before, counter)
            else:
                stats = self._unit(_Unit(i, 0, stream), None, None, result, rejects_fh, before, counter)
                stream.stats, stream.rejects_path = (
                    shard_stats.read_stats(stats["read"]),
                    self.work / f"{i}-00000" / "read_rejects.jsonl",
                )
        result.steps.extend(self.totals)
        return self._kept(), self.rest

    def _sharded_source(self, i, stream: ShardedStream, result, rejects_fh, before, counter) -> None:
        ctx, reused = ShardContext(), 0
        stream.shard_stats, stream.reject_files = [], []
        source_key = {
            "path": stream.path,
            "stem": stream.stem,
            "name": stream.source_name,
            "limit": stream.limit,
            "format": stream.format,
            "args": stream.stream_args,
        }
        for j in range(len(stream.shards)):
            unit = _Unit(i, j, stream)
            fp = None
            if self.steps_key is not None:
                fp = fingerprint(shard_info(stream.shards[j]), self.steps_key, source_key, ctx.key())
            stats = self._unit(unit, fp, ctx, result, rejects_fh, before, counter)
            reused += stats.get("reused", False)
            ctx.offset += stats["span"]
            ctx.kept += stats["read"]["kept"]
            ctx.format = stats["format"]
            if stats.get("reused"):
                ctx.note_ids(stats["ids"])  # a fresh shard's ids were noted as it was read
            stream.shard_stats.append(shard_stats.read_stats(stats["read"]))
            stream.reject_files.append(self.work / unit.key / "read_rejects.jsonl")
        stream.checkpoints = {"checkpoints": "on", "reused": reused}

    def _unit(self, unit, fp, ctx, result, rejects_fh, before, counter) -> dict[str, Any]:
        """Reuse the unit when its marker matches ``fp``, else process it; then replay its stats and rejects."""
        folder, marker = self.work / unit.key, self.work / f"{unit.key}.done"
        stats = _load(folder, marker, fp)
        if stats is None:
            if self.reused_state and not self.primed and self.completed == 0:
                self._prime()
            marker.unlink(missing_ok=True)
            shutil.rmtree(folder, ignore_errors=True)
            stats = self._process(unit, folder, ctx)
            if fp is not None:
                _write_marker(marker, fp)
            self.completed += 1
            if self.crash_after and self.completed >= self.crash_after:
                os.kill(os.getpid(), signal.SIGKILL)  # tests only: a crash right after k shards
        else:
            stats["reused"] = True
            self.reused_state |= any(set(s["details"]) - {"ran_on"} for s in stats["steps"])
        self._replay(folder, stats, result, rejects_fh, before, counter)
        return stats

    def _prime(self) -> None:
        """Run the first shard through the record steps again, its results dropped, before the first new shard.

        A step's details hold values it sets once per process (an index's size) beside
        counts; each shard stores the change it made to them. In the run that made the
        first shard, that change holds the once-per-process values; priming a resumed
        process on the same shard makes the later shards' changes pure counts again,
        as in an unbroken run. The first unit is a shard: whole sources are never reused.
        """
        self.primed = True
        first = self.sources.streams[0]
        if not isinstance(first, ShardedStream):
            return
        stream = first.shard_stream(0, ShardContext(), local_dir=self.work / ".fetched")
        for _ in LocalExecutor().run(
            self.leading, stream, CurationResult(out_dir=self.work), lambda *_: None
        ):
            pass

    def _process(self, unit: _Unit, folder: Path, ctx: ShardContext | None) -> dict[str, Any]:
        """Read one shard through the leading steps into a temporary folder, fsync, rename into place."""
        tmp = folder.with_name(f".{folder.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if ctx is None:  # a whole non-sharded source
            stream = unit.stream
            stream.rejects_path = tmp / "read_rejects.jsonl" if stream.rejects_path else None
        else:
            stream = unit.stream.shard_stream(
                unit.index,
                ctx,
                rejects_path=tmp / "read_rejects.jsonl" if unit.stream.rejects_path else None,
                local_dir=self.work / ".fetched",
            )
        snapshots = [copy.deepcopy(s.details) for s in self.leading]
        unit_result, profile = CurationResult(out_dir=tmp), Profile()
        with (
            open(tmp / "kept.jsonl", "w", encoding="utf-8") as kept_fh,
            open(tmp / "rejects.jsonl", "w", encoding="utf-8") as rej_fh,
        ):

            def reject(step_name: str, decision: Decision) -> None:
                rej_fh.write(reject_line(step_name, decision))

            def observe(records):
                for r in records:
                    profile.add(r, full=False)
                    yield r

            for record in LocalExecutor().run(self.leading, observe(stream), unit_result, reject):
                kept_fh.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
            _sync(kept_fh, rej_fh)
        local = stream.path
        new_ids = ctx.take_ids() if ctx is not None else []
        stats = {
            "read": stream.stats.to_dict(),
            "steps": [
                shard_stats.unit_step(s, snap) for s, snap in zip(unit_result.steps, snapshots, strict=True)
            ],
            "span": span_of(local, stream) if ctx is not None else 0,
            "format": stream.format,
            "ids": new_ids,
        }
        (tmp / "lengths.u32").write_bytes(profile.lengths.tobytes())
        for name in ("lengths.u32", "read_rejects.jsonl"):
            if (tmp / name).is_file():
                _sync_path(tmp / name)
        with open(tmp / "stats.json", "w", encoding="utf-8") as fh:
            fh.write(json.dumps(stats, ensure_ascii=False, default=str))
            _sync(fh)
        if local.startswith(str(self.work / ".fetched")):
            Path(local).unlink(missing_ok=True)
        os.replace(tmp, folder)
        _sync_path(self.work)
        return stats

    def _replay(self, folder, stats, result, rejects_fh, before, counter) -> None:
        """What a processed or reused shard adds to the run: rejects, step totals, lengths, records read."""
        with open(folder / "rejects.jsonl", encoding="utf-8") as fh:
            for line in fh:
                result.rejected[json.loads(line)["reason"]] += 1
                rejects_fh.write(line)
        for total, step, unit in zip(self.totals, self.leading, stats["steps"], strict=True):
            shard_stats.add_step(total, unit, step.max_examples)
        lengths = array("I")
        lengths.frombytes((folder / "lengths.u32").read_bytes())
        before.lengths.extend(lengths)
        counter[0] += stats["read"]["kept"]
        self.kept_files.append(folder / "kept.jsonl")

    def _kept(self) -> Iterator[Record]:
        for path in self.kept_files:
            with open(path, "rb") as fh:
                for line in fh:
                    yield record_from_dict(orjson.loads(line))


def _steps_key(steps: list[Step]) -> str | None:
    """The leading steps' settings as a fingerprint; ``None`` when one cannot be written down stably."""
    parts = []
    for step in steps:
        state = {k: v for k, v in vars(step).items() if k != "details"}
        try:
            text = json.dumps(state, sort_keys=True, default=_stable, ensure_ascii=False)
        except (TypeError, ValueError):
            return None
        parts.append([type(step).__module__, type(step).__qualname__, step.name, text])
    return fingerprint(parts)


def _stable(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, set | frozenset):  # iteration order differs between processes
        return sorted(obj, key=repr)
    text = repr(obj)
    if " at 0x" in text:  # an object without a readable form: no stable fingerprint
        raise TypeError(text)
    return text


def _load(folder: Path, marker: Path, fp: str | None) -> dict[str, Any] | None:
    """The stats of a shard completed with fingerprint ``fp``, or ``None`` (no marker, another input, no folder)."""
    if fp is None or not marker.is_file() or not folder.is_dir():
        return None
    try:
        if json.loads(marker.read_text(encoding="utf-8")).get("fingerprint") != fp:
            return None
        return json.loads((folder / "stats.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_marker(marker: Path, fp: str) -> None:
    tmp = marker.with_name(f".{marker.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps({"fingerprint": fp}) + "\n")
        _sync(fh)
    os.replace(tmp, marker)
    _sync_path(marker.parent)


def _sync(*files: IO[Any]) -> None:
    for fh in files:
        fh.flush()
        os.fsync(fh.fileno())


def _sync_path(path: Path) -> None:
    """fsync a file or folder by path (a folder: so the renames in it are on disk)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["CRASH_ENV", "ShardCheckpoints", "checkpoints_for", "remove_work", "work_dir"]
