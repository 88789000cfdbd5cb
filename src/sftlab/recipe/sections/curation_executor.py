"""``curation.executor`` / ``curation.ray:`` — where the curation steps run.

``local`` runs them in this process; ``ray`` runs the same steps on a Ray
cluster through Ray Data (the optional extra ``sftlab[ray]``): record steps as
batch maps over blocks on the workers, exact and near dedup by a hash shuffle,
the other global steps on the driver. Both keep and reject the same records.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sftlab.recipe.base import Section

ExecutorName = Literal["local", "ray"]


class RaySection(Section):
    address: str | None = None
    """Ray cluster to join (``auto``, ``HEAD_IP:6379`` or ``ray://HEAD_IP:10001``); null starts a local cluster sized
    to this machine for the run and stops it at the end."""
    num_cpus: int | None = Field(default=None, ge=1)
    """CPUs of the local cluster started when ``address`` is null (null: every core of this machine)."""
    block_records: int = Field(default=10_000, ge=1)
    """Records per block: the unit a worker holds at a time, so memory per worker is bounded by a block."""
    partitions: int | None = Field(default=None, ge=1)
    """Partitions of the dedup and conflicts shuffles (null: one per block of records, at least twice the
    cluster's CPUs)."""
    shuffle: Literal["sort", "hash"] = "sort"
    """Ray Data shuffle strategy: ``sort`` (tasks only, cheap to start) or ``hash`` (aggregator actors, for large
    clusters)."""
    score_actors: int = Field(default=1, ge=1)
    """Actors of the ``score`` step's pool: each loads the scoring model once and scores block after block."""
    score_gpus: float = Field(default=0, ge=0)
    """GPUs per scoring actor (0: CPU; 1: one GPU each; 0.5: two actors share a GPU)."""
