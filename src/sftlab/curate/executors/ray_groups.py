"""Decontamination and conflicts on Ray.

* ``decontaminate``: the driver builds the step's n-gram index once (the
  step's own ``indexes``) and puts it in the object store once (``ray.put``;
  Ray Data's ``fn_args`` would be stored once per segment too, but deserialised
  again by every task). A worker process fetches it on its first block and
  keeps it; the step's own ``process`` then runs in the record-step segment.
  The per-set match counts come back with each block's stats and are summed.
* ``conflicts``: each record's prompt key (the step's own ``prompt_key``; for
  ``match: minhash`` one key per LSH band of the step's own prompt signature)
  on the workers, a hash shuffle by key; a record alone under its keys is in
  no group (the LSH argument of :mod:`~sftlab.curate.executors.ray_shuffle`),
  so the step's own ``decide`` over the records whose key is shared, in input
  order, decides exactly as over the whole input. The decisions are replayed
  on the workers like dedup's.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from sftlab.curate.executors.ray_executor import _Replay, _Run
from sftlab.curate.executors.ray_shuffle import _fetch, _keyed, _records, band_keyed, candidates
from sftlab.curate.steps.base import Decision, RecordStep, Step
from sftlab.curate.steps.conflicts import PROMPT_PERM, ConflictStep
from sftlab.curate.steps.decontaminate import DecontaminateStep, NgramIndex
from sftlab.data.record import Record

_INDEXES: dict[str, list[NgramIndex]] = {}
"""The index this worker process fetched, by object id (one run's at a time)."""


class _Broadcast(RecordStep):
    """A decontaminate step as it travels to the workers: without its index, which it fetches from the
    object store once per worker process."""

    sums_details = True
    """Its details (matches per evaluation set) are counts: the executor sums them over the blocks."""

    def __init__(self, step: DecontaminateStep, ref: Any):
        super().__init__(step.action)
        self.name = step.name
        self.max_examples = step.max_examples
        self.step = DecontaminateStep(step.cfg)  # the same config, no index: what is pickled stays small
        self.ref = ref

    def apply(self, records: Iterable[Record]) -> Iterator[Decision]:
        self.step._indexes = _index(self.ref)
        self.step.details = {}
        yield from super().apply(records)
        self.details = {"matches": self.step.details["matches"]} if "matches" in self.step.details else {}

    def process(self, record: Record) -> Decision:
        return self.step.process(record)


def _index(ref: Any) -> list[NgramIndex]:
    import ray

    key = ref.hex()
    if key not in _INDEXES:
        _INDEXES.clear()
        _INDEXES[key] = ray.get(ref)
    return _INDEXES[key]


def broadcast(run: _Run, steps: list[Step]) -> list[Step]:
    """``steps`` with each decontaminate step replaced by its worker form; its index built here once."""
    out: list[Step] = []
    for step in steps:
        if isinstance(step, DecontaminateStep):
            if id(step) not in run.broadcast:
                run.broadcast[id(step)] = run.ray.put(step.indexes)  # builds it, and its details
            step = _Broadcast(step, run.broadcast[id(step)])
        out.append(step)
    return out


def index_details(run: _Run, steps: list[Step]) -> None:
    """The index's details (sets, n-gram counts) into the report, when the step saw records (as locally)."""
    for step in steps:
        stats = run.stats[id(step)]
        if isinstance(step, DecontaminateStep) and stats.records_in:
            stats.details.update({k: v for k, v in step.details.items() if k != "matches"})


def conflicts_step(run: _Run, step: ConflictStep) -> _Replay:
    """Decide ``step`` over the records whose prompt key is shared; its decisions, to replay on the workers."""
    start = time.perf_counter()
    wanted = candidates(run, _prompt_band_keys if step.cfg.match == "minhash" else _prompt_keys, step)
    records = _fetch(run, wanted)
    local = run.positions(wanted).tolist()  # where the local step sees them: names ``#12``
    decisions = step.decide(records, local)
    removed = {int(wanted[k]): (d.reason, d.detail) for k, d in enumerate(decisions) if d.reason is not None}
    stats = run.stats[id(step)]
    stats.details.update(step.details)
    stats.details["candidates"] = len(wanted)
    stats.seconds += time.perf_counter() - start
    return _Replay(step, removed)


def _prompt_keys(table: pa.Table, step: ConflictStep, partitions: int) -> pa.Table:
    """The first 8 bytes of a stable hash of each record's prompt key (records without a prompt: none)."""
    keys, idx = [], []
    for i, record in zip(table.column("idx").to_numpy().tolist(), _records(table), strict=True):
        key = step.prompt_key(record)
        if key is not None:
            digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
            keys.append(int.from_bytes(digest, "little"))
            idx.append(i)
    return _keyed(np.array(keys, dtype=np.uint64), np.array(idx, dtype=np.int64), partitions)


def _prompt_band_keys(table: pa.Table, step: ConflictStep, partitions: int) -> pa.Table:
    """``match: minhash``: one key per LSH band of each prompt's signature (the step's own signatures and
    banding), as minhash dedup: records whose band keys nobody shares are in no cluster."""
    sig = step.prompt_signatures(_records(table))
    return band_keyed(sig, table.column("idx").to_numpy(), step.cfg.threshold, PROMPT_PERM, partitions)
