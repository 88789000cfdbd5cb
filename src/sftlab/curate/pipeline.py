"""The curation runner: records → ordered steps → kept / rejects / report, with exact accounting.

Record steps stream; a global step gathers what reaches it. Every decision is
routed as it is made: removed records go to ``rejects.jsonl`` with
``{"step", "reason", "detail", "record"}``, kept ones flow to the next step and
finally to ``kept.jsonl`` (canonical ``Record.to_dict()`` lines). When a
``split`` step ran, ``train.jsonl`` / ``validation.jsonl`` / ``test.jsonl`` are
written beside it. All files are written atomically.

The runner refuses to finish when records in + added ≠ kept + rejected,
per step and overall: a record can never vanish silently. Given a
:class:`~sftlab.data.sources.SourceSet`, "in" counts the lines of the files and
reading is the first step (``read``), its rejections merged into ``rejects.jsonl``.

    out_dir/kept.jsonl  rejects.jsonl  report.json  report.html  [train|validation|test].jsonl
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from sftlab.curate import resume
from sftlab.curate.executors import Executor
from sftlab.curate.executors.local import LocalExecutor
from sftlab.curate.report import write_report
from sftlab.curate.result import SPLIT_FILES, CurationResult, Profile, profile_summary
from sftlab.curate.shards import kept_writer
from sftlab.curate.steps.base import Decision, Step
from sftlab.data.record import Record
from sftlab.data.sources import SourceSet
from sftlab.errors import DataError
from sftlab.utils.atomic import atomic_path


def _observe(records: Iterable[Record], profile: Profile, counter: list[int]) -> Iterator[Record]:
    for r in records:
        counter[0] += 1
        profile.add(r, full=False)
        yield r


def curate(
    records: Iterable[Record],
    steps: list[Step],
    out_dir: str | Path,
    *,
    report: bool = True,
    title: str = "Curation report",
    executor: Executor | None = None,
    shard_records: int = 0,
) -> CurationResult:
    """Run ``steps`` over ``records``; write kept/rejects/splits/report into ``out_dir``.

    Everything is written into a staging folder that replaces ``out_dir`` in one
    rename, so a kill at any point leaves the previous complete outputs or the
    new complete ones, never a mix. ``executor`` decides where the steps run
    (default: :class:`~sftlab.curate.executors.local.LocalExecutor`). ``shard_records`` > 0 writes the
    kept records as shards with an index (:mod:`sftlab.curate.shards`); sharded input on the local
    executor is checkpointed per input shard (:mod:`sftlab.curate.resume`).
    """
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    result = CurationResult(
        out_dir=out_dir, kept_file="kept/index.json" if shard_records > 0 else "kept.jsonl"
    )
    try:
        with atomic_path(out_dir, is_dir=True) as stage:
            before, after = _write_outputs(
                records, steps, stage, result, executor or LocalExecutor(), shard_records
            )
            result.profile = profile_summary(before, after)
            if report:
                write_report(result, before.lengths, after.lengths, title=title, folder=stage)
    except OSError as err:
        if not str(getattr(err, "filename", "") or "").startswith(str(out_dir.parent)):
            raise
        raise DataError(f"cannot write the curation outputs in {out_dir}: {err.strerror or err}") from None
    resume.remove_work(out_dir)
    return result


def _check_out_dir(out_dir: Path) -> None:
    """Curation replaces its whole folder, so the folder must hold nothing but curation outputs."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise DataError(f"{out_dir}: exists and is not a folder; choose another curation output folder")
    ours = {f"{n}.jsonl" for n in ("kept", "rejects", *SPLIT_FILES)} | {"kept", "report.json", "report.html"}
    foreign = sorted(
        p.name
        for p in out_dir.iterdir()
        if p.name not in ours and not p.name.startswith((".read_rejects_", "read_rejects_"))
    )
    if foreign:
        raise DataError(
            f"{out_dir}: holds files curation did not write ({', '.join(foreign[:3])}); curation replaces "
            "the whole folder, so choose an empty folder or one of its own"
        )


def _write_outputs(
    records: Iterable[Record],
    steps: list[Step],
    stage: Path,
    result: CurationResult,
    executor: Executor,
    shard_records: int = 0,
) -> tuple[Profile, Profile]:
    """Stream ``records`` through ``steps`` into ``stage``; returns the before/after profiles."""
    before, after = Profile(), Profile()
    counter = [0]
    with_splits = any(getattr(s, "writes_split", False) for s in steps)
    with contextlib.ExitStack() as stack:
        rejects_fh = stack.enter_context(open(stage / "rejects.jsonl", "w", encoding="utf-8"))
        kept_fh = stack.enter_context(kept_writer(stage, shard_records))
        split_fhs = {
            name: stack.enter_context(open(stage / f"{name}.jsonl", "w", encoding="utf-8"))
            for name in (SPLIT_FILES if with_splits else ())
        }

        def reject(step_name: str, decision: Decision) -> None:
            result.rejected[decision.reason] += 1
            rejects_fh.write(resume.reject_line(step_name, decision))  # one row format, checkpoints included

        stream = _observe(records, before, counter)
        checkpoints = resume.checkpoints_for(records, steps, result.out_dir, executor)
        if checkpoints is not None:  # sharded input: reading + leading record steps resume per shard
            stream, steps = checkpoints.run(result, rejects_fh, before, counter)
        for record in executor.run(steps, stream, result, reject):
            row = json.dumps(record.to_dict(), ensure_ascii=False) + "\n"
            kept_fh.write(row)
            result.kept += 1
            after.add(record, full=True)
            if with_splits:
                name = record.meta.extra.get("split", "train")
                split_fhs[name].write(row)
                result.splits[name] = result.splits.get(name, 0) + 1
        result.records_in = counter[0]
        if isinstance(records, SourceSet):
            _account_reading(records, result, rejects_fh)
            records.discard_reject_files()
        result.added = sum(s.added for s in result.steps)
        _check_accounting(result)
    return before, after


def _account_reading(sources: SourceSet, result: CurationResult, rejects_fh) -> None:
    """Make reading the first step: lines read become "in", read rejections join the rejects file."""
    read = sources.step_stats()
    if read.kept != result.records_in:
        raise RuntimeError(f"reading yielded {read.kept} records but curation received {result.records_in}")
    result.steps.insert(0, read)
    result.records_in = read.records_in
    result.rejected.update(read.rejected)
    for row in sources.reject_rows():
        rejects_fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")


def _check_accounting(result: CurationResult) -> None:
    for s in result.steps:
        if s.records_in + s.added != s.kept + s.rejected_total:
            raise RuntimeError(
                f"curation step {s.step} lost records: in {s.records_in} + added {s.added} "
                f"!= kept {s.kept} + rejected {s.rejected_total}"
            )
    if result.records_in + result.added != result.kept + result.rejected_total:
        raise RuntimeError(
            f"curation lost records: in {result.records_in} + added {result.added} "
            f"!= kept {result.kept} + rejected {result.rejected_total}"
        )
