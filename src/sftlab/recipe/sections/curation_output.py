"""``curation.output:`` — how the curation outputs are laid out on disk."""

from __future__ import annotations

from pydantic import Field

from sftlab.recipe.base import Section


class CurationOutputSection(Section):
    shard_records: int = Field(default=0, ge=0)
    """Kept records per output shard: ``0`` writes one ``kept.jsonl``; N writes ``kept/part-00000.jsonl`` … of N
    records each and ``kept/index.json`` (shard names, record counts, sha256), which training and ``sftlab run``
    read through."""
