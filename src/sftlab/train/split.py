"""Hold out an evaluation share of the training records, stratified by task.

Stratifying keeps a rare task present in both halves; a plain random cut of a
mix where one task has 5 records often leaves it out of eval entirely.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from sftlab.data.record import Record


def stratum(record: Record) -> str:
    """The group a record is stratified by: its task, else its source, else ``default``."""
    return record.meta.task or record.meta.source or "default"


def stratified_split(
    records: Sequence[Record], fraction: float, seed: int = 42
) -> tuple[list[Record], list[Record]]:
    """``(train, eval)``: about ``fraction`` of every task held out, at least one where a task has 2+ records.

    Deterministic for a seed; the relative order of records is kept in both halves.

    >>> from sftlab.data.record import TextRecord, Meta
    >>> recs = [TextRecord(str(i), Meta(task="a" if i < 8 else "b")) for i in range(10)]
    >>> train, held = stratified_split(recs, 0.25, seed=0)
    >>> len(train), len(held), sorted({r.meta.task for r in held})
    (7, 3, ['a', 'b'])
    """
    if fraction <= 0:
        return list(records), []
    groups: dict[str, list[int]] = defaultdict(list)
    for i, rec in enumerate(records):
        groups[stratum(rec)].append(i)
    rng = random.Random(seed)
    held: set[int] = set()
    for name in sorted(groups):
        idx = groups[name]
        if len(idx) < 2:
            continue
        k = min(len(idx) - 1, max(1, round(len(idx) * fraction)))
        held.update(rng.sample(idx, k))
    train = [r for i, r in enumerate(records) if i not in held]
    evals = [r for i, r in enumerate(records) if i in held]
    return train, evals
