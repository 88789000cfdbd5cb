"""The contract of a curation step, and the bookkeeping every step gets for free.

A step receives records and yields **every** record exactly once, as a
:class:`Decision`: kept (``reason is None``), or removed with a short snake_case
reason (``"exact_duplicate"``, ``"boilerplate"``). The runner counts decisions
per reason, writes removed records to the rejects file and checks that
records in = kept + rejected — so nothing can vanish silently.

Two kinds of step:

* :class:`RecordStep` — pure per-record work (normalise, filters): implement
  :meth:`RecordStep.process`. Streams, and can run over shards in parallel.
* :class:`GlobalStep` — needs to see all records (dedup, conflicts, selection):
  implement :meth:`GlobalStep.decide` over the list. Written in two phases
  (signatures per record, then a global pass) so it can be partitioned later.

``action: flag`` keeps a record that would be removed and notes the reason in
``record.meta.extra["flags"]`` instead.

A step may also *add* records (augmentation): it yields them as decisions with
``added=True``; the accounting then reads in + added = kept + rejected.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sftlab.data.record import Record


@dataclass
class Decision:
    """What a step decided for one record (the record may have been edited)."""

    record: Record
    reason: str | None = None
    detail: str | None = None
    added: bool = False
    """True for a record the step created (augmentation), not one it received."""
    edited: bool = False
    """True when the step changed the record's text (counted as ``edited``)."""

    @property
    def kept(self) -> bool:
        return self.reason is None


@dataclass
class StepStats:
    """Counts and timing of one step, as written to the curation report."""

    step: str
    records_in: int = 0
    kept: int = 0
    flagged: int = 0
    edited: int = 0
    added: int = 0
    rejected: Counter = field(default_factory=Counter)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "in": self.records_in,
            "out": self.kept,
            "rejected": self.rejected_total,
            "rejected_by_reason": dict(self.rejected),
            "flagged": self.flagged,
            "edited": self.edited,
            "added": self.added,
            "seconds": round(self.seconds, 3),
            "examples": self.examples,
            "details": self.details,
        }


class Step:
    """Base of all steps. ``name`` is the recipe's ``type``; ``action`` is ``drop`` or ``flag``."""

    name: ClassVar[str] = "step"
    max_examples: ClassVar[int] = 3

    def __init__(self, action: str = "drop"):
        self.action = action
        self.details: dict[str, Any] = {}

    def apply(self, records: Iterable[Record]) -> Iterator[Decision]:
        raise NotImplementedError

    def run(self, records: Iterable[Record], stats: StepStats) -> Iterator[Decision]:
        """Apply the step, counting and (for ``action: flag``) turning removals into flags.

        ``stats.seconds`` is this step's own time: steps are chained generators,
        so time spent upstream (producing input) and downstream (between yields)
        is left out.
        """
        upstream = [0.0]
        decisions = self.apply(_count(records, stats, upstream))
        while True:
            start, waited = time.perf_counter(), upstream[0]
            try:
                decision = next(decisions)
            except StopIteration:
                stats.seconds += time.perf_counter() - start - (upstream[0] - waited)
                break
            stats.seconds += time.perf_counter() - start - (upstream[0] - waited)
            if decision.added:
                stats.added += 1
            if decision.edited:
                stats.edited += 1
            # A record a person kept or edited in review passes every later rule (a flag instead).
            reviewed = decision.record.meta.extra.get("sftlab_review") in ("keep", "edit")
            if decision.reason is not None and (self.action == "flag" or reviewed):
                flags = decision.record.meta.extra.setdefault("flags", [])
                flags.append(f"{self.name}:{decision.reason}")
                stats.flagged += 1
                decision = Decision(decision.record, None, decision.detail, decision.added, decision.edited)
            if decision.reason is None:
                stats.kept += 1
            else:
                stats.rejected[decision.reason] += 1
                examples = stats.examples.setdefault(decision.reason, [])
                if len(examples) < self.max_examples:
                    examples.append(
                        {
                            "id": decision.record.meta.id,
                            "text": decision.record.all_text()[:300],
                            "detail": decision.detail,
                        }
                    )
            yield decision
        stats.details.update(self.details)


class RecordStep(Step):
    """A step that looks at one record at a time."""

    def process(self, record: Record) -> Decision:
        """Return the (possibly edited) record, kept or with the reason it is removed."""
        raise NotImplementedError

    def apply(self, records: Iterable[Record]) -> Iterator[Decision]:
        for record in records:
            yield self.process(record)


class GlobalStep(Step):
    """A step that needs every record before deciding (dedup, conflicts, selection)."""

    def decide(self, records: list[Record]) -> list[Decision]:
        """One decision per input record, in input order."""
        raise NotImplementedError

    def apply(self, records: Iterable[Record]) -> Iterator[Decision]:
        items = list(records)
        decisions = self.decide(items)
        if len(decisions) != len(items):
            raise RuntimeError(
                f"step {self.name} returned {len(decisions)} decisions for {len(items)} records"
            )
        yield from decisions


def _count(records: Iterable[Record], stats: StepStats, upstream: list[float]) -> Iterator[Record]:
    """Count the records going in, and the time spent waiting for them."""
    it = iter(records)
    while True:
        start = time.perf_counter()
        try:
            record = next(it)
        except StopIteration:
            upstream[0] += time.perf_counter() - start
            return
        upstream[0] += time.perf_counter() - start
        stats.records_in += 1
        yield record
