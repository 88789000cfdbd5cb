"""Configs of the editing and heuristic-filter curation steps (``normalize`` … ``pii``), and ``StepBase``.

Split out of ``curation.py`` (which imports them back), so each file stays readable.
"""

from __future__ import annotations

from typing import Literal

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
