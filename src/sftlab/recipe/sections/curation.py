"""``curation:`` — ordered curation steps."""

from __future__ import annotations

from pydantic import Field

from sftlab.recipe.base import Section


class CurationSection(Section):
    enabled: bool = True
    """Run the curation steps; when false the raw records are used as they are."""
    steps: list[dict] = Field(default_factory=list)
