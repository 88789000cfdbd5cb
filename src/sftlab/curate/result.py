"""What a curation run did, and the profiles gathered while records stream past.

Shared by the runner (:mod:`sftlab.curate.pipeline`), the executors and the
report (:mod:`sftlab.curate.report`), so none of them imports another.
"""

from __future__ import annotations

import random
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sftlab.curate.steps.base import StepStats
from sftlab.data.record import Conversation, Record

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
    kept_file: str = "kept.jsonl"
    """``kept/index.json`` when the kept records are written as shards (:mod:`sftlab.curate.shards`)."""

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
            "files": _files(self.out_dir, bool(self.splits), self.kept_file),
            **self.profile,
        }


def _files(out_dir: Path, with_splits: bool, kept_file: str = "kept.jsonl") -> dict[str, str]:
    names = ["kept", "rejects"] + (list(SPLIT_FILES) if with_splits else [])
    files = {n: str(out_dir / f"{n}.jsonl") for n in names}
    files["kept"] = str(out_dir / kept_file)
    files.update(report_json=str(out_dir / "report.json"), report_html=str(out_dir / "report.html"))
    return files


class Profile:
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


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct n-grams / all n-grams over ``texts`` (1.0 = no n-gram repeats).

    >>> distinct_n(["a b a b"], 1), distinct_n(["a b a b"], 2)
    (0.5, 0.6666666666666666)
    """
    from sftlab.curate.steps.text import words

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


def profile_summary(before: Profile, after: Profile) -> dict[str, Any]:
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
