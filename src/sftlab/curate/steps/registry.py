"""Step name (the recipe's ``type``) → step class; builds the ordered steps of a recipe.

Classes are named as ``"module:Class"`` strings and imported on first use, so
a recipe that only filters never imports the model-based steps. A step class
is built with ``Class(config)`` where ``config`` is its pydantic model from
``sftlab.recipe.sections.curation``.

To add a step: one line in ``STEPS`` and its config in the ``StepConfig`` union.

>>> [s.name for s in build_steps([{"type": "exact_dedup"}, {"type": "placeholder"}])]
['exact_dedup', 'placeholder']
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from sftlab.curate.steps.base import Step
from sftlab.errors import RecipeError
from sftlab.recipe.sections.curation import StepConfig

STEPS: dict[str, str] = {
    "normalize": "sftlab.curate.steps.normalise:NormalizeStep",
    "length": "sftlab.curate.steps.filters:LengthFilter",
    "garbled": "sftlab.curate.steps.filters:GarbledFilter",
    "language": "sftlab.curate.steps.filters:LanguageFilter",
    "boilerplate": "sftlab.curate.steps.filters_text:BoilerplateFilter",
    "ambiguous_reference": "sftlab.curate.steps.filters_text:AmbiguousFilter",
    "time_sensitive": "sftlab.curate.steps.filters_text:TimeSensitiveFilter",
    "placeholder": "sftlab.curate.steps.filters_placeholder:PlaceholderFilter",
    "repetition": "sftlab.curate.steps.filters_repetition:RepetitionFilter",
    "off_topic": "sftlab.curate.steps.filters_text:OffTopicFilter",
    "context_fragment": "sftlab.curate.steps.filters_context:ContextFragmentFilter",
    "jailbreak": "sftlab.curate.steps.filters_jailbreak:JailbreakFilter",
    "pii": "sftlab.curate.steps.filters_pii:PiiFilter",
    "exact_dedup": "sftlab.curate.steps.dedup:ExactDedup",
    "minhash_dedup": "sftlab.curate.steps.dedup:MinHashDedup",
    "rouge_dedup": "sftlab.curate.steps.dedup:RougeDedup",
    "conflicts": "sftlab.curate.steps.conflicts:ConflictStep",
    "decontaminate": "sftlab.curate.steps.decontaminate:DecontaminateStep",
    "split": "sftlab.curate.steps.split:SplitStep",
    "augment": "sftlab.curate.steps.augment:AugmentStep",
    "score": "sftlab.curate.steps.scoring:ScoreStep",
    "select": "sftlab.curate.steps.selection:SelectStep",
    "review": "sftlab.curate.steps.review:ReviewStep",
}

_ADAPTER: TypeAdapter = TypeAdapter(StepConfig)


def step_class(type_name: str) -> type[Step]:
    """The class registered for ``type_name`` (imported now)."""
    try:
        target = STEPS[type_name]
    except KeyError:
        known = ", ".join(sorted(STEPS))
        raise RecipeError([f"curation step type '{type_name}' is not registered; known: {known}"]) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def parse_step_config(cfg: Any) -> Any:
    """A step config from a dict (validated) or an already-built config model."""
    if not isinstance(cfg, dict):
        return cfg
    try:
        return _ADAPTER.validate_python(cfg)
    except ValidationError as err:
        problems = [
            f"curation step {cfg.get('type', '?')}: {'.'.join(map(str, e['loc'][1:])) or 'type'}: {e['msg']}"
            for e in err.errors()
        ]
        raise RecipeError(problems, source="curation.steps") from None


def build_step(cfg: Any) -> Step:
    """One step from its config (dict or model)."""
    cfg = parse_step_config(cfg)
    step = step_class(cfg.type)(cfg)
    step.name = cfg.name or cfg.type
    return step


def build_steps(cfgs: Iterable[Any], *, model: str | None = None) -> list[Step]:
    """The ordered steps of ``curation.steps``; names made unique (``dedup``, ``dedup#2``).

    ``model`` (the recipe's ``model.name``) is the default model of the model-based
    steps (``score``, ``select`` with ``embedding: lm``) whose config names none.
    """
    steps: list[Step] = []
    seen: dict[str, int] = {}
    for cfg in cfgs:
        step = build_step(cfg)
        if model is not None and hasattr(step, "default_model"):
            step.default_model = model
        seen[step.name] = seen.get(step.name, 0) + 1
        if seen[step.name] > 1:
            step.name = f"{step.name}#{seen[step.name]}"
        steps.append(step)
    return steps
