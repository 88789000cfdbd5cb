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
class _Open:
    """The files of the shard being processed: its kept records and the rejects of the record steps."""

    kept: IO[str]
    rejects: IO[str]


class ShardCheckpoints:
    """Runs reading + the leading record steps per input shard, reusing shards completed by an earlier run.

    The record steps run as ONE chain over the new shards' records, as in a run
    without checkpoints (a step's ``apply`` runs once, its details accumulate);
    the chain asks for a record only when the previous one is decided, so the
    source closes a shard's files right before the next shard's first record.
    """

    def __init__(self, sources: SourceSet, steps: list[Step], out_dir: Path):
        n = next((i for i, s in enumerate(steps) if not isinstance(s, RecordStep)), len(steps))
        self.sources, self.leading, self.rest = sources, steps[:n], steps[n:]
        self.work = work_dir(Path(out_dir))
        self.steps_key = _steps_key(self.leading)
        self.totals = [StepStats(step=s.name) for s in self.leading]
        self.done: list[tuple[Path, dict[str, Any]]] = []  # every shard in order, with its stats
        self.current: _Open | None = None
        self.live: list[StepStats] = []
        self.baseline: list[dict[str, Any]] | None = None
        self.completed = 0
        self.reused_state = False  # a reused shard carries state the record steps keep (their details)
        self.crash_after = int(os.environ.get(CRASH_ENV) or 0)

    def run(
        self, result: CurationResult, rejects_fh: IO[str], before: Profile, counter: list[int]
    ) -> tuple[Iterator[Record], list[Step]]:
        """Process or reuse every shard; returns the records that reach the first global step, and the steps left.

        The leading steps' rejects go to ``rejects_fh`` (counted in ``result``),
        their stats to ``result.steps``; ``before`` and ``counter`` get what reading yielded.
        """
        self.work.mkdir(parents=True, exist_ok=True)
        for stale in self.work.glob(".*.tmp"):  # what a killed run was writing
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink()
        live = CurationResult(out_dir=self.work)  # LocalExecutor appends one StepStats per step
        chain = LocalExecutor().run(self.leading, self._new_records(), live, self._reject)
        self.live = live.steps
        self.baseline = self._snapshot()  # the steps as built: the first new shard counts from here
        for record in chain:
            if self.current is not None:
                self.current.kept.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")
        for total in self.totals:
            total.details["ran_on"] = "local"
        for folder, stats in self.done:
            self._replay(folder, stats, result, rejects_fh, before, counter)
        result.steps.extend(self.totals)
        return self._kept(), self.rest

    def _reject(self, step_name: str, decision: Decision) -> None:
        if self.current is not None:
            self.current.rejects.write(reject_line(step_name, decision))

    def _new_records(self) -> Iterator[Record]:
        """The records of every shard not reusable from a checkpoint, shard by shard, in order."""
        for i, stream in enumerate(self.sources.streams):
            if isinstance(stream, ShardedStream):
                yield from self._sharded_source(i, stream)
                continue

            def whole(rejects: Path, stream: RecordStream = stream) -> RecordStream:
                stream.rejects_path = rejects if stream.rejects_path else None
                return stream

            yield from self._shard(f"{i}-00000", whole, None, None)
            stream.stats = shard_stats.read_stats(self.done[-1][1]["read"])
            stream.rejects_path = self.done[-1][0] / "read_rejects.jsonl"

    def _sharded_source(self, i: int, stream: ShardedStream) -> Iterator[Record]:
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
            key = f"{i}-{j:05d}"
            fp = None
            if self.steps_key is not None:
                fp = fingerprint(shard_info(stream.shards[j]), self.steps_key, source_key, ctx.key())
            stats = _load(self.work / key, self.work / f"{key}.done", fp)
            if stats is not None:
                reused += 1
                self.reused_state |= any(set(s["details"]) - {"ran_on"} for s in stats["steps"])
                self.done.append((self.work / key, stats))
                ctx.note_ids(stats["ids"])
            else:
                if self.reused_state and self.completed == 0:
                    yield from self._priming()

                def shard(rejects: Path, j: int = j) -> RecordStream:
                    return stream.shard_stream(j, ctx, rejects_path=rejects, local_dir=self.work / ".fetched")

                yield from self._shard(key, shard, ctx, fp)
                stats = self.done[-1][1]
            ctx.offset += stats["span"]
            ctx.kept += stats["read"]["kept"]
            ctx.format = stats["format"]
            stream.shard_stats.append(shard_stats.read_stats(stats["read"]))
            stream.reject_files.append(self.work / key / "read_rejects.jsonl")
        stream.checkpoints = {"checkpoints": "on", "reused": reused}

    def _priming(self) -> Iterator[Record]:
        """Shard 0 again, its results dropped, before the first new shard of a resumed run.

        A step's details hold values it sets once per process (an index's size,
        a review file's size) beside counts, and each shard stores the change it
        made to them; the run that made shard 0 counted the once-per-process
        values there. Passing shard 0 through this process's steps first puts
        them where an unbroken run would be, so later shards store pure counts.
        """
        first = self.sources.streams[0]
        if isinstance(first, ShardedStream):  # it is: whole sources are never reused
            yield from first.shard_stream(0, ShardContext(), local_dir=self.work / ".fetched")
        self.baseline = None

    def _shard(
        self, key: str, open_stream: Any, ctx: ShardContext | None, fp: str | None
    ) -> Iterator[Record]:
        """One shard's records through the chain, its results into a temporary folder, fsynced, renamed, marked."""
        folder, marker = self.work / key, self.work / f"{key}.done"
        marker.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        tmp = folder.with_name(f".{key}.tmp")
        tmp.mkdir(parents=True)
        stream = open_stream(tmp / "read_rejects.jsonl")
        profile, snapshot = Profile(), self.baseline or self._snapshot()
        self.baseline = None
        with (
            open(tmp / "kept.jsonl", "w", encoding="utf-8") as kept_fh,
            open(tmp / "rejects.jsonl", "w", encoding="utf-8") as rej_fh,
        ):
            self.current = _Open(kept_fh, rej_fh)
            for record in stream:
                profile.add(record, full=False)
                yield record
            # asked for the next record: every record of this shard is decided and written
            self.current = None
            _sync(kept_fh, rej_fh)
        stats = {
            "read": stream.stats.to_dict(),
            "steps": [
                shard_stats.unit_step(now, then) for now, then in zip(self._snapshot(), snapshot, strict=True)
            ],
            "span": span_of(stream.path, stream) if ctx is not None else 0,
            "format": stream.format,
            "ids": ctx.take_ids() if ctx is not None else [],
        }
        _finish(tmp, folder, stats, profile)
        if stream.path.startswith(str(self.work / ".fetched")):
            Path(stream.path).unlink(missing_ok=True)
        if fp is not None:
            _write_marker(marker, fp)
        self.done.append((folder, stats))
        self.completed += 1
        if self.crash_after and self.completed >= self.crash_after:
            os.kill(os.getpid(), signal.SIGKILL)  # tests only: a crash right after k shards

    def _snapshot(self) -> list[dict[str, Any]]:
        """Each leading step's counts so far and its own details, to tell one shard's share from the next."""
        return [
            shard_stats.snapshot(stats, step) for stats, step in zip(self.live, self.leading, strict=True)
        ]

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

    def _kept(self) -> Iterator[Record]:
        for folder, _ in self.done:
            with open(folder / "kept.jsonl", "rb") as fh:
                for line in fh:
                    yield record_from_dict(orjson.loads(line))


def _finish(tmp: Path, folder: Path, stats: dict[str, Any], profile: Profile) -> None:
    """Write a shard's stats and lengths, fsync its files, and rename its folder into place."""
    (tmp / "lengths.u32").write_bytes(profile.lengths.tobytes())
    with open(tmp / "stats.json", "w", encoding="utf-8") as fh:
        fh.write(json.dumps(stats, ensure_ascii=False, default=str))
        _sync(fh)
    for name in ("lengths.u32", "read_rejects.jsonl"):
        if (tmp / name).is_file():
            _sync_path(tmp / name)
    os.replace(tmp, folder)
    _sync_path(folder.parent)


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
