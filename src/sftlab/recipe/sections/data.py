"""``data:`` — where the raw records come from and how they are read."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sftlab.recipe.base import Section

FormatName = Literal["auto", "alpaca", "sharegpt", "messages", "text", "sftlab"]


class SourceSection(Section):
    path: str
    """File (.json/.jsonl/.parquet/.csv), saved HF dataset folder, or hub dataset name."""
    name: str | None = None
    """Short name used in reports and per-source metrics; defaults to the file stem."""
    format: FormatName = "auto"
    """Record format; ``auto`` detects it from the first records."""
    mapping: dict[str, str] = Field(default_factory=dict)
    """Column/role renames, LLaMA-Factory ``dataset_info.json`` keys given flat (``prompt: question``,
    ``messages: dialog``, ``role_tag: speaker``, ``user_tag: Human``); ``reasoning_tag: think`` splits a
    leading ``<think>…</think>`` of assistant answers into reasoning (never done unless asked)."""
    split: str | None = None
    """Split of a Hugging Face dataset (``train`` if omitted)."""
    weight: float = Field(default=1.0, ge=0)
    """Sampling weight when mixing sources during training."""
    task: str | None = None
    """Task name given to every record of this source (for stratified splits and metrics)."""
    general: bool = False
    """General-purpose data mixed in to keep general ability (counted by ``doctor``)."""
    limit: int | None = Field(default=None, ge=1)
    """Read at most this many records."""


class DataSection(Section):
    sources: list[SourceSection] = Field(default_factory=list)
    """Training data sources, read in order."""
    eval_sources: list[SourceSection] = Field(default_factory=list)
    """Held-out evaluation data; if empty, ``eval_fraction`` of the training data is held out."""
    eval_fraction: float = Field(default=0.1, ge=0, lt=1)
    """Share held out for evaluation (stratified by task) when no ``eval_sources`` are given."""
    on_error: Literal["fail", "skip"] = "fail"
    """``fail`` stops at the first bad record naming file:line; ``skip`` writes it to the rejects file."""
