"""``curation:`` — ordered curation steps, one typed config per step ``type``.

Each step's config is its own model (editing and filters in ``curation_filters``,
dedup to review in ``curation_select``, both re-exported here); ``StepConfig`` is
the union of all of them, told apart by ``type``. To add a step: write
``class MyConfig(StepBase)`` with ``type: Literal["my_step"]``, add it to
``StepConfig`` and register the step class in ``sftlab.curate.steps.registry``.

>>> CurationSection.model_validate({"steps": [{"type": "exact_dedup"}]}).steps[0].field
'prompt+response'
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from sftlab.recipe.base import Section
from sftlab.recipe.sections.curation_executor import ExecutorName, RaySection
from sftlab.recipe.sections.curation_filters import (
    AmbiguousFilterConfig,
    BoilerplateFilterConfig,
    ContextFragmentFilterConfig,
    GarbledFilterConfig,
    JailbreakFilterConfig,
    KeepRule,
    LanguageFilterConfig,
    LengthFilterConfig,
    NormalizeConfig,
    OffTopicFilterConfig,
    PiiFilterConfig,
    PlaceholderFilterConfig,
    RepetitionFilterConfig,
    StepBase,
    TextField,
    TimeSensitiveFilterConfig,
)
from sftlab.recipe.sections.curation_output import CurationOutputSection
from sftlab.recipe.sections.curation_select import (
    AugmentConfig,
    ConflictsConfig,
    DecontaminateConfig,
    ExactDedupConfig,
    JudgeConfig,
    MinHashDedupConfig,
    ReviewConfig,
    RougeDedupConfig,
    ScoreConfig,
    SelectConfig,
    SplitConfig,
)

__all__ = [
    "AmbiguousFilterConfig",
    "AugmentConfig",
    "BoilerplateFilterConfig",
    "ConflictsConfig",
    "ContextFragmentFilterConfig",
    "CurationSection",
    "DecontaminateConfig",
    "ExactDedupConfig",
    "GarbledFilterConfig",
    "JailbreakFilterConfig",
    "JudgeConfig",
    "KeepRule",
    "LanguageFilterConfig",
    "LengthFilterConfig",
    "MinHashDedupConfig",
    "NormalizeConfig",
    "OffTopicFilterConfig",
    "PiiFilterConfig",
    "PlaceholderFilterConfig",
    "RepetitionFilterConfig",
    "ReviewConfig",
    "RougeDedupConfig",
    "ScoreConfig",
    "SelectConfig",
    "SplitConfig",
    "StepBase",
    "StepConfig",
    "TextField",
    "TimeSensitiveFilterConfig",
]


# The union every ``steps:`` item is validated against, told apart by ``type``.
# Scoring/selection configs are added here too.
StepConfig = Annotated[
    NormalizeConfig
    | LengthFilterConfig
    | GarbledFilterConfig
    | LanguageFilterConfig
    | BoilerplateFilterConfig
    | AmbiguousFilterConfig
    | TimeSensitiveFilterConfig
    | PlaceholderFilterConfig
    | RepetitionFilterConfig
    | OffTopicFilterConfig
    | ContextFragmentFilterConfig
    | JailbreakFilterConfig
    | PiiFilterConfig
    | ExactDedupConfig
    | MinHashDedupConfig
    | RougeDedupConfig
    | ConflictsConfig
    | DecontaminateConfig
    | SplitConfig
    | AugmentConfig
    | ScoreConfig
    | SelectConfig
    | ReviewConfig,
    Field(discriminator="type"),
]


class CurationSection(Section):
    enabled: bool = True
    """Run the curation steps; when false the raw records are used as they are."""
    steps: list[StepConfig] = Field(default_factory=list)
    """Ordered steps; each item's ``type`` picks the step (normalize, length, garbled, language, boilerplate, ambiguous_reference, time_sensitive, placeholder, repetition, off_topic, context_fragment, jailbreak, pii, exact_dedup, minhash_dedup, rouge_dedup, conflicts, decontaminate, split, augment, score, select, review)."""
    output: CurationOutputSection = Field(default_factory=CurationOutputSection)
    """Layout of the outputs (``shard_records``: kept records as shards plus an index)."""
    executor: ExecutorName = "local"
    """Where the steps run: ``local`` (this process) or ``ray`` (a Ray cluster through Ray Data, see ``curation.ray``);
    both keep and reject the same records."""
    ray: RaySection = Field(default_factory=RaySection)
    """The Ray cluster of ``executor: ray`` (``address`` null: a local one sized to this machine)."""
