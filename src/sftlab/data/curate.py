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
import random
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sftlab.data.record import Conversation, Record
from sftlab.data.sources import SourceSet
from sftlab.data.steps.base import Step, StepStats
from sftlab.errors import DataError
from sftlab.utils.atomic import atomic_path

SPLIT_FILES = ("train", "validation", "test")
DIVERSITY_SAMPLE = 5000


@dataclass
class CurationResult:
    """What a curation run did; ``to_dict()`` is the body of ``report.json``."""

    out_dir: Path
    records_in: int = 0
    added: int = 0
    kept: int = 0
    rejected: Counter = field(default_factory=Counter)
    steps: list[StepStats] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "records_in": self.records_in,
            "added": self.added,
            "kept": self.kept,
            "rejected": self.rejected_total,
            "rejected_by_reason": dict(self.rejected.most_common()),
            "accounting_ok": self.records_in + self.added == self.kept + self.rejected_total,
            "steps": [s.to_dict() for s in self.steps],
            "splits": self.splits,
            "files": _files(self.out_dir, bool(self.splits)),
            **self.profile,
        }


def _files(out_dir: Path, with_splits: bool) -> dict[str, str]:
    names = ["kept", "rejects"] + (list(SPLIT_FILES) if with_splits else [])
    files = {n: str(out_dir / f"{n}.jsonl") for n in names}
    files.update(report_json=str(out_dir / "report.json"), report_html=str(out_dir / "report.html"))
    return files


class _Profile:
    """Lengths, tasks, labels and a diversity sample, gathered while records stream past."""

    def __init__(self, seed: int = 0):
        self.lengths = array("I")
        self.tasks: Counter = Counter()
        self.labels: Counter = Counter()
        self.sample: list[str] = []
        self.seen = 0
        self.rng = random.Random(seed)

    def add(self, record: Record, *, full: bool) -> None:
        text = record.all_text()
        self.lengths.append(min(len(text.split()), 2**32 - 1))
        if not full:
            return
        self.tasks[record.meta.task or "(none)"] += 1
        if record.meta.label is not None:
            self.labels[str(record.meta.label)] += 1
        # Reservoir sample of answers for distinct-n (bounded memory at any size).
        answer = record.response if isinstance(record, Conversation) else record.text
        self.seen += 1
        if len(self.sample) < DIVERSITY_SAMPLE:
            self.sample.append(answer)
        else:
            j = self.rng.randrange(self.seen)
            if j < DIVERSITY_SAMPLE:
                self.sample[j] = answer


def _observe(records: Iterable[Record], profile: _Profile, counter: list[int]) -> Iterator[Record]:
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
) -> CurationResult:
    """Run ``steps`` over ``records``; write kept/rejects/splits/report into ``out_dir``.

    Everything is written into a staging folder that replaces ``out_dir`` in one
    rename, so a kill at any point leaves the previous complete outputs or the
    new complete ones, never a mix.
    """
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    result = CurationResult(out_dir=out_dir)
    try:
        with atomic_path(out_dir, is_dir=True) as stage:
            before, after = _write_outputs(records, steps, stage, result)
            result.profile = _profile_summary(before, after)
            if report:
                from sftlab.data.curation_report import write_report

                write_report(result, before.lengths, after.lengths, title=title, folder=stage)
    except OSError as err:
        if not str(getattr(err, "filename", "") or "").startswith(str(out_dir.parent)):
            raise
        raise DataError(f"cannot write the curation outputs in {out_dir}: {err.strerror or err}") from None
    return result


def _check_out_dir(out_dir: Path) -> None:
    """Curation replaces its whole folder, so the folder must hold nothing but curation outputs."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise DataError(f"{out_dir}: exists and is not a folder; choose another curation output folder")
    ours = {f"{n}.jsonl" for n in ("kept", "rejects", *SPLIT_FILES)} | {"report.json", "report.html"}
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
    records: Iterable[Record], steps: list[Step], stage: Path, result: CurationResult
) -> tuple[_Profile, _Profile]:
    """Stream ``records`` through ``steps`` into ``stage``; returns the before/after profiles."""
    before, after = _Profile(), _Profile()
    counter = [0]
    with_splits = any(getattr(s, "writes_split", False) for s in steps)
    with contextlib.ExitStack() as stack:
        rejects_fh = stack.enter_context(open(stage / "rejects.jsonl", "w", encoding="utf-8"))
        kept_fh = stack.enter_context(open(stage / "kept.jsonl", "w", encoding="utf-8"))
        split_fhs = {
            name: stack.enter_context(open(stage / f"{name}.jsonl", "w", encoding="utf-8"))
            for name in (SPLIT_FILES if with_splits else ())
        }
        stream: Iterable[Record] = _observe(records, before, counter)
        for step in steps:
            stats = StepStats(step=step.name)
            result.steps.append(stats)
            stream = _route(step, stream, stats, rejects_fh, result)
        for record in stream:
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


def _route(step: Step, records: Iterable[Record], stats: StepStats, rejects_fh, result: CurationResult):
    """Send removed records to the rejects file, pass kept ones on."""
    for decision in step.run(records, stats):
        if decision.reason is None:
            yield decision.record
        else:
            result.rejected[decision.reason] += 1
            row = {
                "step": step.name,
                "reason": decision.reason,
                "detail": decision.detail,
                "record": decision.record.to_dict(),
            }
            rejects_fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")


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


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct n-grams / all n-grams over ``texts`` (1.0 = no n-gram repeats).

    >>> distinct_n(["a b a b"], 1), distinct_n(["a b a b"], 2)
    (0.5, 0.6666666666666666)
    """
    from sftlab.data.steps.text import words

    total, distinct = 0, set()
    for t in texts:
        toks = words(t)
        grams = [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
        total += len(grams)
        distinct.update(grams)
    return len(distinct) / total if total else 0.0


def _length_stats(lengths: array) -> dict[str, Any]:
    if not lengths:
        return {"count": 0}
    import numpy as np

    arr = np.frombuffer(lengths, dtype=np.uint32)
    p = np.percentile(arr, [5, 50, 95])
    return {
        "count": int(arr.size),
        "mean": round(float(arr.mean()), 2),
        "p5": float(p[0]),
        "p50": float(p[1]),
        "p95": float(p[2]),
        "max": int(arr.max()),
    }


def _balance(counts: Counter) -> dict[str, Any]:
    """Largest/smallest class ratio and normalised entropy (1.0 = perfectly balanced)."""
    import math

    if not counts:
        return {}
    values = list(counts.values())
    total = sum(values)
    entropy = -sum(v / total * math.log(v / total) for v in values if v)
    return {
        "classes": len(values),
        "max_min_ratio": round(max(values) / max(min(values), 1), 3),
        "normalised_entropy": round(entropy / math.log(len(values)), 4) if len(values) > 1 else 1.0,
    }


def _profile_summary(before: _Profile, after: _Profile) -> dict[str, Any]:
    return {
        "lengths": {
            "unit": "words",
            "before": _length_stats(before.lengths),
            "after": _length_stats(after.lengths),
        },
        "tasks": dict(after.tasks.most_common()),
        "labels": dict(after.labels.most_common()),
        "balance": {"tasks": _balance(after.tasks), "labels": _balance(after.labels)},
        "diversity": {
            "sample": len(after.sample),
            "distinct_1": round(distinct_n(after.sample, 1), 4),
            "distinct_2": round(distinct_n(after.sample, 2), 4),
        },
    }
