"""Diversity for the ``select`` step: source clusters, the calibrated similarity ceiling, spread vs random.

Three pieces, each small and testable alone:

* :func:`cluster_keys` — records cut from one source conversation (ShareGPT's
  split ids ``hRPPgZT_0``, ``hRPPgZT_11``…, or ``provenance.parent_id`` of a
  generated record) share a key, so selection can cap how many it takes of one
  chat (a 9-segment role-play must not fill 9 slots).
* :func:`calibrate_ceiling` — DEITA walks the ranking best first and accepts a
  record only if its cosine similarity to everything already accepted is at most
  a ceiling; a fixed 0.9 let through near-paraphrases and the selection came out
  *less* diverse than a random sample. ``max_similarity: auto`` instead takes the
  strictest ceiling (bisection) that still fills the budget from the best
  ``pool_factor × budget`` records: as diverse as the pool allows without
  reaching below that quality line.
* :func:`spread_check` — the selection's spread (mean pairwise cosine distance,
  :func:`~sftlab.curate.embeddings.mean_pairwise_distance`) next to a seeded random
  subset of the same size and the whole pool, by the same measure, and whether
  the selection beats random.

>>> cluster_keys(["hRPPgZT_0", "hRPPgZT_11", "QWJhYvA_0", None])
['hRPPgZT', 'hRPPgZT', 'QWJhYvA', '#3']
>>> round(calibrate_ceiling(lambda c: 10 if c >= 0.42 else 9, target=10, steps=12), 3)
0.42
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sftlab.curate.embeddings import mean_pairwise_distance

_SPLIT_ID = re.compile(r"^(.+)_(\d+)$")
LARGEST_SPLIT_CLUSTER = 64
"""A "conversation" with more segments than this is not one: the ids merely end in ``_<n>`` (``row_17``)."""


def cluster_keys(ids: Sequence[str | None], parents: Sequence[str | None] | None = None) -> list[str]:
    """One key per record: its parent id, else its split-id stem, else itself (``#<index>`` without an id).

    Split stems are used only when they look like split conversations: if one
    stem would gather more than :data:`LARGEST_SPLIT_CLUSTER` records the ids are
    a numbering (``row_1``, ``row_2``…), and every record is its own cluster.
    """
    parents = parents or [None] * len(ids)
    own = [rid if rid is not None else f"#{i}" for i, rid in enumerate(ids)]
    stems = [(m.group(1) if (m := _SPLIT_ID.match(rid)) else rid) for rid in own]
    largest = max(Counter(stems).values(), default=0)
    use_stems = largest <= LARGEST_SPLIT_CLUSTER
    return [
        str(parent) if parent is not None else (stem if use_stems else rid)
        for parent, stem, rid in zip(parents, stems, own, strict=True)
    ]


def calibrate_ceiling(
    fills: Callable[[float], int], *, target: int, low: float = 0.0, high: float = 1.0, steps: int = 8
) -> float:
    """The smallest similarity ceiling in ``[low, high]`` at which ``fills(ceiling) >= target`` (bisection).

    ``fills`` runs the selection walk at that ceiling and returns how many records
    it took; a stricter (lower) ceiling rejects more records as too similar, so
    filling is (all but) monotone in the ceiling. Returns ``high`` when even that
    does not fill the budget. 8 steps resolve the ceiling to 1/256.
    """
    if fills(high) < target:
        return high
    for _ in range(steps):
        mid = round((low + high) / 2, 6)
        if fills(mid) >= target:
            high = mid
        else:
            low = mid
    return high


def random_subset(n: int, k: int, seed: int = 0) -> list[int]:
    """``k`` distinct indices of ``range(n)``, seeded, sorted."""
    return sorted(np.random.default_rng(seed).choice(n, min(k, n), replace=False).tolist())


def spread_check(
    selected: np.ndarray, random: np.ndarray, pool: np.ndarray, *, pool_size: int, seed: int = 0
) -> dict[str, Any]:
    """Spread of the selection, a random subset of the same size, and the pool; ``more_diverse`` when it beats random.

    The check is not decided (``None``) when the selection holds more than half
    the pool or fewer than 10 records: then any subset is mostly the same records.
    """
    out: dict[str, Any] = {
        "measure": "mean pairwise cosine distance (1 - cos) of the selection embeddings",
        "selected": round(mean_pairwise_distance(selected, seed=seed), 4),
        "random_same_size": round(mean_pairwise_distance(random, seed=seed), 4),
        "pool": round(mean_pairwise_distance(pool, seed=seed), 4),
        "random_seed": seed,
    }
    decidable = 10 <= len(selected) <= pool_size // 2
    out["more_diverse_than_random"] = (out["selected"] > out["random_same_size"]) if decidable else None
    if not decidable:
        out["not_checked"] = (
            f"{len(selected)} of {pool_size} records selected: a random subset is mostly the same"
        )
    return out
