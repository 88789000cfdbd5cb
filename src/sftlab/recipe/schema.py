"""The whole recipe: one section per stage, composed here."""

from __future__ import annotations

from pydantic import Field

from sftlab.recipe.base import Section
from sftlab.recipe.sections.curation import CurationSection
from sftlab.recipe.sections.data import DataSection
from sftlab.recipe.sections.evaluation import EvaluationSection
from sftlab.recipe.sections.model import ModelSection
from sftlab.recipe.sections.render import RenderSection
from sftlab.recipe.sections.synth import SynthSection
from sftlab.recipe.sections.training import TrainingSection


class Recipe(Section):
    """A whole run, from raw data to an evaluated model."""

    name: str = "run"
    """Run name, used in reports."""
    output_dir: str = "runs/run"
    """Run folder; every stage writes here. A relative path is relative to the current directory (as data paths are)."""
    seed: int = 42
    """Seed for data order, splits, initialisation and sampling."""
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    curation: CurationSection = Field(default_factory=CurationSection)
    render: RenderSection = Field(default_factory=RenderSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    synth: SynthSection = Field(default_factory=SynthSection)
