"""The Ray executor: the same steps on a Ray cluster, through Ray Data.

The plan follows the step list:

* consecutive record steps run as **one** ``map_batches`` segment on the
  workers, a block at a time (memory per worker is bounded by a block); each
  batch runs the steps' own :meth:`Step.run` bookkeeping and sends back its
  kept rows, its rejected rows and its per-step stats, merged in input order;
* ``decontaminate`` runs in the segment too, its index built on the driver
  and broadcast once (:mod:`sftlab.curate.executors.ray_groups`);
* ``exact_dedup``, ``minhash_dedup`` and ``conflicts`` group keys by a hash
  shuffle (:mod:`sftlab.curate.executors.ray_shuffle`,
  :mod:`~sftlab.curate.executors.ray_groups`); the decisions are replayed on
  the workers at the start of the next segment;
* every other global step (rouge dedup, selection, split, review, score,
  augment) runs on the driver over the reduced data, streamed in input order,
  with the step's own code.

Every row carries its input index, so a record keeps its identity across
stages, the kept records come back in input order and the position a global
step sees (``#12`` for a record without id) is the one the local run sees.
Records cross as ``Record.to_dict()`` JSON.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from sftlab.curate.executors import RejectSink
from sftlab.curate.executors.local import route
from sftlab.curate.result import CurationResult
from sftlab.curate.steps.base import Decision, RecordStep, Step, StepStats
from sftlab.data.record import Record, record_from_dict
from sftlab.errors import MissingDependencyError, SftlabError
from sftlab.utils.progress import track

KEPT, REJECTED, STATS = 0, 1, 2
OUT_SCHEMA = pa.schema(
    [("idx", pa.int64()), ("kind", pa.int8()), ("step", pa.string()), ("reason", pa.string()),
     ("detail", pa.string()), ("rec", pa.binary())]
)  # fmt: skip
DRIVER_ONLY = ("ReviewStep",)
"""Record steps that keep state across records (a decision file): run on the driver."""
LABELS = {"workers": "ray workers", "shuffle": "ray shuffle", "groups": "ray shuffle", "actors": "ray actors"}


def import_ray():
    """``ray`` and ``ray.data``, or one clear line saying how to install them."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "ray[data]", "curation.executor: ray", "pip install 'sftlab[ray]'"
        ) from None
    return ray


class RayExecutor:
    """Runs the steps on a Ray cluster (``address``) or on a local one sized to this machine."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        block_records: int = 10_000,
        partitions: int | None = None,
        shuffle: str = "sort",
        score_actors: int = 1,
        score_gpus: float = 0,
    ):
        self.address = address
        self.num_cpus = num_cpus
        self.block_records = block_records
        self.partitions = partitions
        self.shuffle = shuffle
        self.score_actors = score_actors
        self.score_gpus = score_gpus
        self.ray = import_ray()

    def run(
        self, steps: list[Step], records: Iterable[Record], result: CurationResult, reject: RejectSink
    ) -> Iterator[Record]:
        started = self._connect()
        try:
            yield from _Run(self, steps, result, reject).execute(records)
        except self.ray.exceptions.RayError as err:
            raise _user_error(err) or err from None
        finally:
            if started:
                self.ray.shutdown()

    def _connect(self) -> bool:
        """Join the running Ray instance or start one; True when we started it (and so stop it)."""
        ray = self.ray
        for name in ("ray", "ray.data", "ray.data._internal"):
            # A failing step reaches the user as its own error; Ray Data would log its traceback first.
            logging.getLogger(name).setLevel(logging.CRITICAL)
        started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is None:
                kwargs["num_cpus"] = self.num_cpus or os.cpu_count() or 1
            try:
                ray.init(address=self.address, logging_level=logging.ERROR, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise SftlabError(
                    f"curation.ray.address: cannot join Ray at {self.address!r}: {first}"
                ) from None
            started = True
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ctx.raise_original_map_exception = True  # a step's DataError reaches the user as itself
        # Task-based by default: the hash strategy starts aggregator actors, seconds per shuffle on a small
        # input; on a large cluster "hash" spreads the reduce over more nodes.
        strategy = ray.data.context.ShuffleStrategy
        ctx.shuffle_strategy = (
            strategy.HASH_SHUFFLE if self.shuffle == "hash" else strategy.SORT_SHUFFLE_PULL_BASED
        )
        return started

    def cpus(self) -> int:
        return int(self.ray.cluster_resources().get("CPU", 1))


def plan(steps: list[Step]) -> list[tuple[str, list[Step]]]:
    """Consecutive steps grouped by where they run: ``workers``, ``shuffle``, ``groups`` or ``actors`` (one
    step each), ``driver``."""
    from sftlab.curate.executors.ray_actors import on_actors
    from sftlab.curate.steps.conflicts import ConflictStep
    from sftlab.curate.steps.dedup import ExactDedup, MinHashDedup

    phases: list[tuple[str, list[Step]]] = []
    for step in steps:
        if isinstance(step, ExactDedup | MinHashDedup):
            phases.append(("shuffle", [step]))
            continue
        if isinstance(step, ConflictStep):
            phases.append(("groups", [step]))
            continue
        if on_actors(step):
            phases.append(("actors", [step]))
            continue
        where = "workers"
        if not isinstance(step, RecordStep) or type(step).__name__ in DRIVER_ONLY:
            where = "driver"
        if phases and phases[-1][0] == where:
            phases[-1][1].append(step)
        else:
            phases.append((where, [step]))
    return phases


class _Run:
    """One run: the current dataset, the indices still alive and the decisions waiting to be replayed."""

    def __init__(self, ex: RayExecutor, steps: list[Step], result: CurationResult, reject: RejectSink):
        self.ex, self.ray, self.reject = ex, ex.ray, reject
        self.steps = steps
        self.stats: dict[int, StepStats] = {}
        for step in steps:
            stats = StepStats(step=step.name)
            result.steps.append(stats)
            self.stats[id(step)] = stats
        self.ds = None
        self.alive = np.zeros(0, dtype=np.int64)
        self.pending: _Replay | None = None
        self.broadcast: dict[int, Any] = {}
        """Object refs of the decontaminate indexes put in the object store, by step."""

    def execute(self, records: Iterable[Record]) -> Iterator[Record]:
        from sftlab.curate.executors.ray_actors import score_on_actors
        from sftlab.curate.executors.ray_groups import conflicts_step
        from sftlab.curate.executors.ray_shuffle import shuffle_step

        self.ingest(records)
        phases = plan(self.steps)
        for n, (where, steps) in enumerate(track(phases, "curation on ray (phases)")):
            for step in steps:
                self.stats[id(step)].details["ran_on"] = _where(where, step)
            if where == "workers":
                self.segment(steps)
            elif where in ("shuffle", "groups"):
                self.flush()
                self.pending = (shuffle_step if where == "shuffle" else conflicts_step)(self, steps[0])
            else:
                self.flush()
                if where == "actors":
                    score_on_actors(self, steps[0])
                out = self.on_driver(steps)
                if n == len(phases) - 1:
                    yield from out
                    return
                self.ingest(out)
        self.flush()
        yield from self.iter_records()

    # -- data in and out ---------------------------------------------------------------------

    def ingest(self, records: Iterable[Record]) -> None:
        """Records (from the driver) into blocks of ``block_records`` rows in the object store."""
        refs, idx, rows, n = [], [], [], 0
        for record in records:
            idx.append(n)
            rows.append(orjson.dumps(record.to_dict()))
            n += 1
            if len(rows) == self.ex.block_records:
                refs.append(self.ray.put(_block(idx, rows)))
                idx, rows = [], []
        if rows or not refs:
            refs.append(self.ray.put(_block(idx, rows)))
        self.ds = self.ray.data.from_arrow_refs(refs)
        self.alive = np.arange(n, dtype=np.int64)

    def iter_tables(self, ds=None) -> Iterator[pa.Table]:
        yield from (ds or self.ds).iter_batches(batch_format="pyarrow", batch_size=None)

    def iter_records(self) -> Iterator[Record]:
        for table in self.iter_tables():
            for raw in table.column("rec").to_pylist():
                yield record_from_dict(orjson.loads(raw))

    def positions(self, idx: np.ndarray) -> np.ndarray:
        """Positions among the records alive now (what a local step sees as ``i``) of input indices."""
        return np.searchsorted(self.alive, idx)

    # -- segments on the workers ------------------------------------------------------------

    def flush(self) -> None:
        """Replay decisions still waiting (two shuffle steps in a row, or the end of the steps)."""
        if self.pending is not None:
            self.segment([])

    def segment(self, steps: list[Step]) -> None:
        """One ``map_batches`` over the blocks: the pending replay, then ``steps``; merge what comes back."""
        from sftlab.curate.executors.ray_groups import broadcast, index_details

        origin: list[Step] = [self.pending.step] if self.pending is not None else []
        units: list[Step] = [self.pending] if self.pending is not None else []
        origin += steps
        units += broadcast(self, steps)
        out = self.ds.map_batches(
            _run_units, fn_args=(units,), batch_format="pyarrow", batch_size=None, zero_copy_batch=True
        ).materialize()
        from ray.data.expressions import col

        per_batch: list[tuple[int, list[StepStats]]] = []
        removed: list[np.ndarray] = []
        for table in self.iter_tables(out.filter(expr=col("kind") > KEPT)):
            kinds = table.column("kind").to_numpy()
            idx = table.column("idx").to_numpy()
            removed.append(idx[kinds == REJECTED])
            steps_col, reasons, details = (table.column(c).to_pylist() for c in ("step", "reason", "detail"))
            for i, raw in enumerate(table.column("rec").to_pylist()):
                if kinds[i] == STATS:
                    per_batch.append((int(idx[i]), _load_stats(raw)))
                else:
                    record = record_from_dict(orjson.loads(raw))
                    self.reject(steps_col[i], Decision(record, reasons[i], details[i]))
        self._merge(origin, per_batch)
        index_details(self, steps)
        if removed:
            self.alive = np.setdiff1d(self.alive, np.concatenate(removed), assume_unique=True)
        # Lazy: the next stage reads the kept rows straight from the segment output (one copy in the object store).
        self.ds = out.filter(expr=col("kind") == KEPT).select_columns(["idx", "rec"])
        self.pending = None

    def _merge(self, steps: list[Step], per_batch: list[tuple[int, list[StepStats]]]) -> None:
        """Per-batch stats, in input order, summed into each step's stats (examples: the first ones;
        details a worker sends back are counts by name, summed too)."""
        per_batch.sort(key=lambda item: item[0])
        for k, step in enumerate(steps):
            total = self.stats[id(step)]
            for _, batch_stats in per_batch:
                part = batch_stats[k]
                total.records_in += part.records_in
                total.kept += part.kept
                total.flagged += part.flagged
                total.edited += part.edited
                total.added += part.added
                total.rejected.update(part.rejected)
                total.seconds += part.seconds
                for reason, shown in part.examples.items():
                    into = total.examples.setdefault(reason, [])
                    into.extend(shown[: max(0, step.max_examples - len(into))])
                for key, counts in part.details.items():
                    into = total.details.setdefault(key, {})
                    for name, n in counts.items():
                        into[name] = into.get(name, 0) + n

    # -- steps on the driver ----------------------------------------------------------------

    def on_driver(self, steps: list[Step]) -> Iterator[Record]:
        """Stream the records in input order through ``steps`` in this process."""
        stream: Iterable[Record] = self.iter_records()
        for step in steps:
            stream = route(step, stream, self.stats[id(step)], self.reject)
        return iter(stream)


class _Replay(Step):
    """A shuffle step's decisions (input index → reason, detail) applied to the records it saw."""

    def __init__(self, step: Step, removed: dict[int, tuple[str, str]]):
        super().__init__(step.action)
        self.name = step.name
        self.max_examples = step.max_examples
        self.step = step
        self.removed = removed
        self.current: list[int] = [-1]

    def apply(self, records: Iterable[Record]) -> Iterator[Decision]:
        for record in records:
            hit = self.removed.get(self.current[0])
            yield Decision(record, *hit) if hit else Decision(record)


def _run_units(table: pa.Table, units: list[Step]) -> pa.Table:
    """Worker side of a segment: the units' own ``Step.run`` over one block, as output rows."""
    idx = table.column("idx").to_numpy()
    current = [-1]
    out: dict[str, list] = {name: [] for name in OUT_SCHEMA.names}

    def add(i: int, kind: int, step: str | None, reason: str | None, detail: str | None, rec: bytes) -> None:
        for name, value in zip(OUT_SCHEMA.names, (i, kind, step, reason, detail, rec), strict=True):
            out[name].append(value)

    def source() -> Iterator[Record]:
        for i, raw in zip(idx.tolist(), table.column("rec").to_pylist(), strict=True):
            current[0] = i
            yield record_from_dict(orjson.loads(raw))

    stream: Iterable[Record] = source()
    all_stats: list[StepStats] = []
    for unit in units:
        if isinstance(unit, _Replay):
            unit.current = current
        stats = StepStats(step=unit.name)
        all_stats.append(stats)

        def sink(name: str, decision: Decision) -> None:
            add(current[0], REJECTED, name, decision.reason, decision.detail, _dump(decision.record))

        stream = route(unit, stream, stats, sink)
    for record in stream:
        add(current[0], KEPT, None, None, None, _dump(record))
    for unit, stats in zip(units, all_stats, strict=True):
        if not getattr(unit, "sums_details", False):
            stats.details = {}
    add(int(idx[0]) if len(idx) else -1, STATS, None, None, None, _dump_stats(all_stats))
    return pa.table(out, schema=OUT_SCHEMA)


def _where(phase: str, step: Step) -> str:
    """``details["ran_on"]``: where a step runs on Ray."""
    if phase == "workers" and type(step).__name__ == "DecontaminateStep":
        return "ray workers (index broadcast once)"
    return LABELS.get(phase, "driver")


def _user_error(err: BaseException) -> SftlabError | None:
    """The user-fixable error (bad record, missing model) a worker or actor raised, as its own one line."""
    seen = 0
    cause: BaseException | None = err
    while cause is not None and seen < 8:
        if isinstance(cause, SftlabError) and not isinstance(cause, type(err)):
            first = str(cause).split("\nFailed to apply UDF")[0]
            cause.args = (first,)
            return cause
        cause, seen = getattr(cause, "cause", None) or cause.__cause__, seen + 1
    return None


def _dump(record: Record) -> bytes:
    return orjson.dumps(record.to_dict())


def _block(idx: list[int], rows: list[bytes]) -> pa.Table:
    return pa.table({"idx": pa.array(idx, pa.int64()), "rec": pa.array(rows, pa.binary())})


def _dump_stats(all_stats: list[StepStats]) -> bytes:
    """A block's step counts as JSON (plain data across processes: nothing is ever unpickled).

    Field by field, not ``dataclasses.asdict``: that rebuilds a Counter from its items and so counts pairs.
    """
    rows = [{f.name: getattr(s, f.name) for f in dataclasses.fields(s)} for s in all_stats]
    return json.dumps(rows).encode()


def _load_stats(raw: bytes) -> list[StepStats]:
    out = []
    for row in json.loads(raw):
        row["rejected"] = Counter(row["rejected"])
        out.append(StepStats(**row))
    return out
