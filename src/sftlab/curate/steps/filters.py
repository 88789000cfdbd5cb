"""Heuristic filters: the shared :class:`Filter` base, the text helpers they share, and the
character-level filters (length, garbled text, language).

Each filter implements ``check(record) -> (reason, detail) | None``; the base
turns that into a :class:`Decision`. The other filter families live beside this
module: ``filters_text`` (boilerplate, refusals, ambiguous and time-sensitive
prompts, off-topic answers), ``filters_placeholder`` and ``filters_repetition``.

>>> from sftlab.data.record import Conversation, Turn
>>> rec = Conversation([Turn("user", "Hi"), Turn("assistant", "  ")])
>>> LengthFilter().check(rec)
('empty_response', None)
"""

from __future__ import annotations

import re
from functools import cached_property

from sftlab.curate.steps.base import Decision, RecordStep
from sftlab.curate.steps.text import field_text, prose_only, script_counts, words
from sftlab.data.record import Conversation, Record
from sftlab.recipe.sections.curation import GarbledFilterConfig, LanguageFilterConfig, LengthFilterConfig

Verdict = tuple[str, str | None] | None
# Code is not prose: the filters that judge prose read it without code blocks (text.prose_only).
prose = prose_only


def user_text(record: Record) -> str:
    if isinstance(record, Conversation):
        return "\n".join(t.content for t in record.turns if t.role == "user")
    return record.text


def answers(record: Record) -> list[tuple[int, str]]:
    """``(turn number, text)`` of every trained answer: assistant turns, or a plain text record whole.

    Turn numbers count from 1 over all turns, as a reader of the rejects file counts them.
    """
    if isinstance(record, Conversation):
        return [(i, t.content) for i, t in enumerate(record.turns, 1) if t.role == "assistant"]
    return [(1, record.text)]


def answer_text(record: Record) -> str:
    return "\n".join(text for _, text in answers(record))


def regexes(patterns: list[str]) -> list[re.Pattern]:
    """One alternation (a single scan of the text) instead of one scan per pattern."""
    return [re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)] if patterns else []


def first_match(patterns: list[re.Pattern], text: str) -> str | None:
    for p in patterns:
        m = p.search(text)
        if m:
            return m.group(0)
    return None


class Filter(RecordStep):
    """A record step that only keeps or drops; subclasses write ``check``."""

    config_class: type = LengthFilterConfig

    def __init__(self, cfg=None):
        cfg = cfg or self.config_class()
        super().__init__(cfg.action)
        self.cfg = cfg

    def check(self, record: Record) -> Verdict:
        raise NotImplementedError

    def process(self, record: Record) -> Decision:
        verdict = self.check(record)
        if verdict is None:
            return Decision(record)
        return Decision(record, verdict[0], verdict[1])


# ── length ────────────────────────────────────────────────────────────────


class LengthFilter(Filter):
    """``too_short`` / ``too_long`` / ``empty_response`` by words (CJK characters count as words), chars or tokens."""

    config_class = LengthFilterConfig

    @cached_property
    def _tokenizer(self):
        from sftlab.models import load_tokenizer

        return load_tokenizer(self.cfg.tokenizer or "smollm2-135m-instruct")

    def measure(self, text: str) -> int:
        if self.cfg.unit == "chars":
            return len(text)
        if self.cfg.unit == "tokens":
            return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])
        return len(words(text))

    def check(self, record: Record) -> Verdict:
        cfg = self.cfg
        if isinstance(record, Conversation) and self.measure(record.response.strip()) < cfg.min_response:
            return "empty_response", None
        n = self.measure(field_text(record, cfg.field))
        if n < cfg.min:
            return "too_short", f"{n} {cfg.unit} < {cfg.min}"
        if cfg.max is not None and n > cfg.max:
            return "too_long", f"{n} {cfg.unit} > {cfg.max}"
        return None


# ── garbled text ──────────────────────────────────────────────────────────
_PROSE_PUNCT = set(".,;:!?'\"()-[]/%&#*+=<>$@_~`{}|\\^") | set("，。！？：；（）、“”‘’《》【】…—·「」『』")


# Replacement character, C0/C1 controls other than tab/newline/CR, surrogates and private use.
_BAD_CHAR = re.compile("[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\uf8ff\U000f0000-\U0010ffff]")
_SPACE_CHAR = re.compile(r"\s")
_SYMBOL = re.compile("[^\\w\\s" + re.escape("".join(sorted(_PROSE_PUNCT))) + "]")


def bad_char_ratio(text: str) -> float:
    r"""Share of replacement, control (other than newline/tab), surrogate and private-use characters.

    >>> round(bad_char_ratio("ok\ufffd\x00"), 2)
    0.5
    """
    return len(_BAD_CHAR.findall(text)) / len(text) if text else 0.0


def symbol_ratio(text: str) -> float:
    """Share of non-space characters that are neither letters/digits nor ordinary punctuation."""
    chars = len(text) - len(_SPACE_CHAR.findall(text))
    return len(_SYMBOL.findall(text)) / chars if chars > 0 else 0.0


class GarbledFilter(Filter):
    """``garbled``: broken encodings, control bytes, symbol soup."""

    config_class = GarbledFilterConfig

    def check(self, record: Record) -> Verdict:
        text = record.all_text()
        bad = bad_char_ratio(text)
        if bad > self.cfg.max_bad_char_ratio:
            return "garbled", f"bad characters {bad:.1%}"
        text = prose(text)
        if len(text.strip()) >= self.cfg.min_chars:
            sym = symbol_ratio(text)
            if sym > self.cfg.max_symbol_ratio:
                return "garbled", f"symbols {sym:.1%}"
        return None


# ── language (script) ─────────────────────────────────────────────────────
_ALIASES = {
    "zh": "cjk", "ja": "cjk", "ko": "cjk", "chinese": "cjk", "japanese": "cjk", "korean": "cjk",
    "en": "latin", "fr": "latin", "de": "latin", "es": "latin", "it": "latin", "pt": "latin", "nl": "latin",
    "english": "latin", "ru": "cyrillic", "uk": "cyrillic", "russian": "cyrillic", "ar": "arabic",
    "el": "greek", "he": "hebrew", "hi": "devanagari", "th": "thai",
}  # fmt: skip


class LanguageFilter(Filter):
    """``language_not_allowed``: the letters' scripts (Latin, CJK, Cyrillic, Arabic…) are mostly not allowed ones."""

    config_class = LanguageFilterConfig

    @cached_property
    def allowed(self) -> set[str]:
        return {_ALIASES.get(x.lower(), x.lower()) for x in self.cfg.allowed_languages}

    def check(self, record: Record) -> Verdict:
        counts = script_counts(prose(field_text(record, self.cfg.field)))
        total = sum(counts.values())
        if not total:
            return None
        share = sum(n for s, n in counts.items() if s in self.allowed) / total
        if share < self.cfg.min_share:
            return "language_not_allowed", counts.most_common(1)[0][0]
        return None
