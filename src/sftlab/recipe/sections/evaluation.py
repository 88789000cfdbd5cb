"""``evaluation:`` — what is measured before and after training."""

from __future__ import annotations

from pydantic import Field

from sftlab.recipe.base import Section


class EvaluationSection(Section):
    metrics: list[str] = Field(default_factory=lambda: ["exact_match"])
    """Task metrics on generated answers of the eval split."""
    max_new_tokens: int = Field(default=128, ge=1)
