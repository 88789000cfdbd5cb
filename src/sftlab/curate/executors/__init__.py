"""Where curation steps run: in this process (``local``) or on a Ray cluster (``ray``).

An executor takes the ordered steps and the record stream and yields the kept
records in input order, handing every removed record to ``reject`` as it is
decided and appending one :class:`~sftlab.curate.steps.base.StepStats` per step
to ``result.steps``. The runner (:mod:`sftlab.curate.pipeline`) owns the files,
the profiles and the accounting check, so both executors publish the same
outputs and the same report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from sftlab.curate.result import CurationResult
from sftlab.curate.steps.base import Decision, Step
from sftlab.data.record import Record

RejectSink = Callable[[str, Decision], None]
"""Called with (step name, decision) for every removed record."""


class Executor(Protocol):
    name: str

    def run(
        self, steps: list[Step], records: Iterable[Record], result: CurationResult, reject: RejectSink
    ) -> Iterator[Record]: ...


def build_executor(curation: Any) -> Executor:
    """The executor a recipe's ``curation`` section asks for (``executor: local | ray``)."""
    if getattr(curation, "executor", "local") == "ray":
        from sftlab.curate.executors.ray_executor import RayExecutor

        cfg = curation.ray
        return RayExecutor(
            cfg.address,
            num_cpus=cfg.num_cpus,
            block_records=cfg.block_records,
            partitions=cfg.partitions,
            shuffle=cfg.shuffle,
            score_actors=cfg.score_actors,
            score_gpus=cfg.score_gpus,
        )
    from sftlab.curate.executors.local import LocalExecutor

    return LocalExecutor()
