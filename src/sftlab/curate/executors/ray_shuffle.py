"""Exact and near dedup on Ray: keys computed on the workers, grouped by a hash shuffle.

Two phases, as in :mod:`sftlab.curate.steps.minhash`:

1. on the workers, every record's keys: the first 8 bytes of the exact-dedup
   hash, or one key per LSH band of its MinHash signature (the step's own
   hasher, ``lsh_params`` and ``band_keys``);
2. a hash shuffle (``groupby`` on ``key % partitions``) brings equal keys
   together; a record whose key is shared by another is a *candidate*.

Only candidates can be in a cluster, and a record outside them shares no key
with anyone, so the step's own ``clusters`` over the candidates (in input
order) gives exactly the clusters of the whole input: the same LSH groups with
the same first member, the same similarity and exact-Jaccard checks, the same
connected components. The keep rule is the step's own ``removals`` with the
positions the local run would see. The driver holds the candidates only.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from sftlab.curate.executors.ray_executor import _Replay, _Run
from sftlab.curate.steps.dedup import MAX_CLUSTERS_IN_DETAILS, ExactDedup, MinHashDedup, record_id
from sftlab.curate.steps.minhash import band_keys, lsh_params
from sftlab.curate.steps.text import field_text
from sftlab.data.record import Record, record_from_dict

_BAND_MIX = 0x9E3779B97F4A7C15


def shuffle_step(run: _Run, step: ExactDedup | MinHashDedup) -> _Replay:
    """Decide ``step`` over the current data; returns its decisions, to be replayed on the workers."""
    start = time.perf_counter()
    wanted = candidates(run, _minhash_keys if isinstance(step, MinHashDedup) else _exact_keys, step)
    records = _fetch(run, wanted)
    # Positions among the records this step receives: what the local step calls ``i``.
    local = run.positions(wanted).tolist()
    lookup = dict(zip(local, records, strict=True))
    clusters = [[local[i] for i in c] for c in step.clusters(records)]
    if isinstance(step, ExactDedup) and step.cfg.keep == "first":
        removed, details = _first_removals(step, lookup, clusters)
    else:
        removed = step.removals(lookup, clusters)
        details = step.details
    to_input = dict(zip(local, wanted.tolist(), strict=True))
    stats = run.stats[id(step)]
    stats.details.update(details)
    stats.details["candidates"] = len(wanted)
    stats.seconds += time.perf_counter() - start
    return _Replay(step, {to_input[i]: (step.reason, detail) for i, detail in removed.items()})


def partitions(run: _Run) -> int:
    """Shuffle partitions sized to the data: about one per block of records alive (at least two per
    CPU), so a partition holds a block's worth of keys whatever the size of the input."""
    if run.ex.partitions:
        return run.ex.partitions
    return max(2 * run.ex.cpus(), -(-len(run.alive) // run.ex.block_records))


def candidates(run: _Run, keys_fn, step) -> np.ndarray:
    """Input indices (sorted) of the records sharing a key with another: ``keys_fn(table, step, parts)``
    gives each record's keys on the workers, a hash shuffle brings equal keys together."""
    parts = partitions(run)
    keyed = run.ds.map_batches(keys_fn, fn_args=(step, parts), batch_format="pyarrow", batch_size=None)
    shared = keyed.groupby("part", num_partitions=parts).map_groups(_shared_keys, batch_format="pyarrow")
    wanted = np.unique(np.concatenate([t.column("idx").to_numpy() for t in run.iter_tables(shared)] or [[]]))
    return wanted.astype(np.int64)


def _first_removals(
    step: ExactDedup, records: dict[int, Record], clusters: list[list[int]]
) -> tuple[dict[int, str], dict[str, Any]]:
    """``keep: first`` decisions and the details the streaming local step writes (clusters in the
    order their first duplicate arrives, up to ten removed ids each, the first duplicate's text)."""
    removed: dict[int, str] = {}
    shown = []
    for n, members in enumerate(sorted(clusters, key=lambda c: c[1])):
        kept = record_id(records[members[0]], members[0])
        for i in members[1:]:
            removed[i] = f"duplicate of {kept}"
        if n < MAX_CLUSTERS_IN_DETAILS:
            shown.append(
                {
                    "kept": kept,
                    "size": len(members),
                    "removed": [record_id(records[i], i) for i in members[1:11]],
                    "text": field_text(records[members[1]], step.cfg.field)[:200],
                }
            )
    details = {
        "keep": "first",
        "cluster_count": len(clusters),
        "records_in_clusters": sum(len(c) for c in clusters),
        "clusters": shown,
    }
    return removed, details


def _fetch(run: _Run, wanted: np.ndarray) -> list[Record]:
    """The records with input index in ``wanted``, in input order."""
    chosen = run.ds.map_batches(_select, fn_args=(wanted,), batch_format="pyarrow", batch_size=None)
    return [
        record_from_dict(orjson.loads(raw))
        for table in run.iter_tables(chosen)
        for raw in table.column("rec").to_pylist()
    ]


def _select(table: pa.Table, wanted: np.ndarray) -> pa.Table:
    return table.filter(pc.is_in(table.column("idx"), value_set=pa.array(wanted, pa.int64())))


def _records(table: pa.Table) -> list[Record]:
    return [record_from_dict(orjson.loads(raw)) for raw in table.column("rec").to_pylist()]


def _keyed(keys: np.ndarray, idx: np.ndarray, partitions: int) -> pa.Table:
    keys = keys.astype(np.uint64)
    return pa.table(
        {"part": (keys % np.uint64(partitions)).astype(np.int64), "key": keys, "idx": idx.astype(np.int64)}
    )


def _exact_keys(table: pa.Table, step: ExactDedup, partitions: int) -> pa.Table:
    """The first 8 bytes of each record's exact-dedup hash (a shared prefix only makes a candidate)."""
    keys = np.array(
        [int.from_bytes(step.key(r)[:8], "little") for r in _records(table)], dtype=np.uint64
    ).reshape(-1)
    return _keyed(keys, table.column("idx").to_numpy(), partitions)


def _minhash_keys(table: pa.Table, step: MinHashDedup, partitions: int) -> pa.Table:
    """One key per LSH band of each record's signature, the band folded into the key."""
    texts = [field_text(r, step.cfg.field) for r in _records(table)]
    sig = step.hasher.signatures(texts)
    return band_keyed(sig, table.column("idx").to_numpy(), step.cfg.threshold, step.cfg.num_perm, partitions)


def band_keyed(
    sig: np.ndarray, idx: np.ndarray, threshold: float, num_perm: int, partitions: int
) -> pa.Table:
    """One row per (record, LSH band): the band's key with the band number folded in, so equal keys mean
    the same band agrees."""
    bands, rows = lsh_params(threshold, num_perm)
    keys = [
        band ^ np.uint64(((b + 1) * _BAND_MIX) % 2**64) for b, band in enumerate(band_keys(sig, bands, rows))
    ]
    if not keys:
        return _keyed(np.zeros(0, np.uint64), np.zeros(0, np.int64), partitions)
    return _keyed(np.concatenate(keys), np.tile(idx, len(keys)), partitions)


def _shared_keys(table: pa.Table) -> pa.Table:
    """Input indices of the records whose key another record shares (one partition of the shuffle)."""
    keys = table.column("key").to_numpy()
    idx = table.column("idx").to_numpy()
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    same = sorted_keys[1:] == sorted_keys[:-1]
    dup = np.zeros(len(keys), dtype=bool)
    dup[1:] |= same
    dup[:-1] |= same
    return pa.table({"idx": np.unique(idx[order][dup]).astype(np.int64)})
