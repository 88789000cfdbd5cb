"""``split``: train/validation/test, stratified by ``meta.task``, reproducible from the seed.

Writes ``meta.extra["split"]``; the runner then writes ``train.jsonl``,
``validation.jsonl`` and ``test.jsonl`` beside ``kept.jsonl``. Never removes a record.
"""

from __future__ import annotations

import random

from sftlab.curate.steps.base import Decision, GlobalStep
from sftlab.data.record import Record
from sftlab.errors import RecipeError
from sftlab.recipe.sections.curation import SplitConfig

SPLITS = ("train", "validation", "test")


def split_counts(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Sizes of (train, validation, test) for ``n`` records; rounding goes to train.

    >>> split_counts(10, (0.8, 0.1, 0.1))
    (8, 1, 1)
    >>> split_counts(3, (0.8, 0.1, 0.1))
    (3, 0, 0)
    """
    val = round(n * fractions[1])
    test = round(n * fractions[2])
    return n - val - test, val, test


class SplitStep(GlobalStep):
    """Assigns each record a split, per task, with the same shares in every task."""

    writes_split = True

    def __init__(self, cfg: SplitConfig | None = None):
        cfg = cfg or SplitConfig()
        super().__init__(cfg.action)
        total = cfg.train + cfg.validation + cfg.test
        if abs(total - 1.0) > 1e-6:
            raise RecipeError(
                [
                    f"curation step split: train + validation + test must be 1, got {total:g}; adjust the fractions"
                ]
            )
        self.cfg = cfg

    def decide(self, records: list[Record]) -> list[Decision]:
        by_task: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            by_task.setdefault(r.meta.task or "(none)", []).append(i)
        rng = random.Random(self.cfg.seed)
        table: dict[str, dict[str, int]] = {}
        fractions = (self.cfg.train, self.cfg.validation, self.cfg.test)
        for task in sorted(by_task):
            idx = by_task[task][:]
            rng.shuffle(idx)
            n_train, n_val, _ = split_counts(len(idx), fractions)
            for pos, i in enumerate(idx):
                name = "train" if pos < n_train else "validation" if pos < n_train + n_val else "test"
                records[i].meta.extra["split"] = name
            table[task] = dict(zip(SPLITS, split_counts(len(idx), fractions), strict=True))
        self.details = {"splits": table, "seed": self.cfg.seed}
        return [Decision(r) for r in records]
