"""Per-shard step stats of a checkpointed curation (:mod:`sftlab.curate.resume`), and their sum over shards.

A shard stores each record step's counts and the change it made to the step's
own details; adding them up shard by shard gives what one unbroken pass gives.

>>> total = {"matches": {"eval": 2}, "sets": 1}
>>> merge(total, delta({"matches": {"eval": 2}, "sets": 1}, {"matches": {"eval": 5}, "sets": 1}))
>>> total
{'matches': {'eval': 5}, 'sets': 1}
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

from sftlab.curate.steps.base import Step, StepStats
from sftlab.data.io import ReadStats


def snapshot(stats: StepStats, step: Step) -> dict[str, Any]:
    """A step's counts so far (its live :class:`StepStats`) and its own details, at a shard boundary."""
    return {
        "in": stats.records_in,
        "out": stats.kept,
        "flagged": stats.flagged,
        "edited": stats.edited,
        "added": stats.added,
        "seconds": stats.seconds,
        "rejected_by_reason": dict(stats.rejected),
        "examples": {reason: list(rows) for reason, rows in stats.examples.items()},
        "details": copy.deepcopy(step.details),
    }


def unit_step(now: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    """One shard's share of a step: the difference of two snapshots (details: counts as changes)."""
    out = {k: now[k] - then[k] for k in ("in", "out", "flagged", "edited", "added", "seconds")}
    out["rejected_by_reason"] = {
        r: n - then["rejected_by_reason"].get(r, 0)
        for r, n in now["rejected_by_reason"].items()
        if n > then["rejected_by_reason"].get(r, 0)
    }
    out["examples"] = {
        r: rows[len(then["examples"].get(r, [])) :]
        for r, rows in now["examples"].items()
        if len(rows) > len(then["examples"].get(r, []))
    }
    out["details"] = delta(then["details"], now["details"])
    return out


def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Counts as the change since ``before``; other values as they are after."""
    out = {}
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            out[key] = delta(old, value)
        elif _number(value) and _number(old):
            out[key] = value - old
        else:
            out[key] = copy.deepcopy(value)
    return out


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def merge(total: dict[str, Any], change: dict[str, Any]) -> None:
    """Add a shard's ``change`` into ``total``: counts summed, other values replaced."""
    for key, value in change.items():
        old = total.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            merge(old, value)
        elif _number(value) and _number(old):
            total[key] = old + value
        else:
            total[key] = copy.deepcopy(value)


def add_step(total: StepStats, unit: dict[str, Any], max_examples: int) -> None:
    """Add one shard's numbers of a step to its run total; examples kept first come, as the step keeps them."""
    total.records_in += unit["in"]
    total.kept += unit["out"]
    total.flagged += unit["flagged"]
    total.edited += unit["edited"]
    total.added += unit["added"]
    total.seconds += unit["seconds"]
    total.rejected.update(unit["rejected_by_reason"])
    for reason, examples in unit["examples"].items():
        have = total.examples.setdefault(reason, [])
        have.extend(examples[: max(max_examples - len(have), 0)])
    merge(total.details, unit["details"])


def read_stats(d: dict[str, Any]) -> ReadStats:
    """A shard's reading back from its stored ``ReadStats.to_dict()``."""
    return ReadStats(
        records_in=d["in"],
        kept=d["kept"],
        rejected=d["rejected"],
        rejected_by_reason=Counter(d["rejected_by_reason"]),
        repaired=Counter(d["repaired"]),
        path=d["path"],
        format=d["format"],
    )


def shards_line(d: dict[str, Any]) -> str:
    """One line per sharded source for the console and the report, from the read step's ``details.shards``.

    >>> shards_line({"source": "train", "shards": 6, "checkpoints": "on", "reused": 2})
    'train: 6 shards, checkpoints on, 2 reused from an interrupted run'
    """
    reused = f", {d['reused']} reused from an interrupted run" if d.get("reused") else ""
    return f"{d['source']}: {d['shards']} shards, checkpoints {d['checkpoints']}{reused}"
