"""``evaluation:`` — what is measured before and after training."""

from __future__ import annotations

import sys
from typing import Any, Literal

from pydantic import Field, field_validator

from sftlab.recipe.base import Section

MetricName = Literal[
    "exact_match",
    "accuracy",
    "macro_f1",
    "bleu",
    "chrf",
    "rouge_l",
    "json_valid",
    "json_schema",
    "json_field_match",
    "in_label_set",
]


class MmluSection(Section):
    enabled: bool = True
    """Score MMLU by log-likelihood for every model (the retention benchmark)."""
    path: str | None = None
    """A JSONL file in the MMLU shape (question, answer_a..answer_d, correct_answer, topic); default: the embedded copy."""
    subset: int = Field(default=200, ge=0)
    """Questions drawn, stratified by subject with the recipe seed; 0 = all 14,042."""
    k_shot: int = Field(default=0, ge=0, le=10)
    """Solved examples of the same subject placed before each question."""
    scoring: Literal["letter", "option_text"] = "letter"
    """``letter``: log-prob of " A".." D" after "Answer:" (one forward per question); ``option_text``: of each option's text."""


class MultipleChoiceSetSection(Section):
    name: str
    """Name shown in the report."""
    path: str
    """A JSONL file in the MMLU shape."""
    subset: int = Field(default=0, ge=0)
    """Questions drawn (stratified by ``topic``); 0 = all."""
    k_shot: int = Field(default=0, ge=0, le=10)
    """Solved examples placed before each question."""
    scoring: Literal["letter", "option_text"] = "letter"
    """How options are scored (see ``mmlu.scoring``)."""


class RetentionSection(Section):
    threshold: float = Field(default=0.02, ge=0, le=1)
    """Largest allowed drop of the benchmark accuracy (absolute, 0.02 = 2 points) from the base model."""
    action: Literal["warn", "fail"] = "warn"
    """What a larger drop does: ``warn`` marks it in the report; ``fail`` also makes ``sftlab eval`` exit non-zero."""


class LatencySection(Section):
    enabled: bool = True
    """Fit generation time t = k·tokens + b for every model."""
    token_counts: list[int] = Field(default_factory=lambda: [4, 8, 16, 32])
    """Generated token counts measured (forced, EOS ignored)."""
    prompt_lengths: list[int] = Field(default_factory=lambda: [16, 64, 256])
    """Prompt lengths in tokens for the time-to-first-token curve."""
    repeats: int = Field(default=2, ge=1)
    """Measurements per point; the fastest counts (the others carry noise from the machine)."""


def custom_metric_problem(spec: str) -> str | None:
    """Why ``spec`` cannot name a custom metric, or ``None``; checked without importing anything.

    A custom metric runs your code, so it must be yours: a ``.py`` file
    (``metrics.py:score``) or an installed package's module, never the standard
    library (``os:system`` would run a shell command at evaluation time).

    >>> custom_metric_problem("os:system")
    "'os:system' is a standard-library function; name a function of your own (file.py:function or package.module:function)"
    >>> custom_metric_problem("metrics.py:score") is None
    True
    """
    module_name, sep, func_name = spec.rpartition(":")
    if not sep or not module_name or not func_name.isidentifier():
        return f"'{spec}' is not module:function or file.py:function (e.g. mymetrics:score)"
    if module_name.endswith(".py"):
        return None
    top = module_name.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names or top == "sftlab":
        return (
            f"'{spec}' is a standard-library function; name a function of your own "
            "(file.py:function or package.module:function)"
        )
    return None


class EvaluationSection(Section):
    metrics: list[MetricName] = Field(default_factory=lambda: ["exact_match"])
    """Task metrics on generated answers of the eval split."""
    custom_metric: str | None = None
    """Your own metric as ``file.py:function`` (relative to where you run sftlab) or ``package.module:function``;
    called with (predictions, references), returns a number or a dict. **This runs your code** at evaluation time;
    standard-library functions and functions imported from elsewhere are refused."""

    @field_validator("custom_metric")
    @classmethod
    def _own_code_only(cls, value: str | None) -> str | None:
        problem = custom_metric_problem(value) if value else None
        if problem:
            raise ValueError(problem)
        return value

    label_set: list[str] = Field(default_factory=list)
    """Allowed answers for classification metrics; empty = the ``meta.label`` values (or answers) of the eval set."""
    json_schema: dict[str, Any] | str | None = None
    """JSON schema (inline, or a .json file) the ``json_schema`` metric checks answers against."""
    max_new_tokens: int = Field(default=128, ge=1)
    """Longest generated answer in tokens."""
    batch_size: int = Field(default=8, ge=1)
    """Sequences per forward pass for generation, loss and scoring."""
    max_samples: int | None = Field(default=None, ge=1)
    """Evaluate at most this many eval records (the first ones)."""
    icl_k: int = Field(default=0, ge=0)
    """In-context baseline: the base model with this many training examples in its prompt; 0 = off."""
    worst_records: int = Field(default=20, ge=0)
    """Records with the highest loss listed in the report."""
    mmlu: MmluSection = Field(default_factory=MmluSection)
    multiple_choice: list[MultipleChoiceSetSection] = Field(default_factory=list)
    """Extra multiple-choice sets scored like MMLU."""
    retention: RetentionSection = Field(default_factory=RetentionSection)
    latency: LatencySection = Field(default_factory=LatencySection)
    sweep: bool = True
    """Evaluate every checkpoint in ``<run>/checkpoints/`` and mark the best trade-off."""
    sweep_samples: int = Field(default=64, ge=1)
    """Eval records (and MMLU questions) used per checkpoint in the sweep, to keep it fast."""
