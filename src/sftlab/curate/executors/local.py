"""The local executor: steps chained as generators in this process, records streaming through."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from sftlab.curate.executors import RejectSink
from sftlab.curate.result import CurationResult
from sftlab.curate.steps.base import Step, StepStats
from sftlab.data.record import Record


class LocalExecutor:
    """Record steps stream one record at a time; a global step gathers what reaches it."""

    name = "local"

    def run(
        self, steps: list[Step], records: Iterable[Record], result: CurationResult, reject: RejectSink
    ) -> Iterator[Record]:
        stream: Iterable[Record] = records
        for step in steps:
            stats = StepStats(step=step.name)
            stats.details["ran_on"] = "local"
            result.steps.append(stats)
            stream = route(step, stream, stats, reject)
        return iter(stream)


def route(step: Step, records: Iterable[Record], stats: StepStats, reject: RejectSink) -> Iterator[Record]:
    """Send removed records to ``reject``, pass kept ones on."""
    for decision in step.run(records, stats):
        if decision.reason is None:
            yield decision.record
        else:
            reject(step.name, decision)
