"""Heuristic filters: one small class per drop reason family, English and Chinese patterns.

Each filter implements ``check(record) -> (reason, detail) | None``; the
shared :class:`Filter` turns that into a :class:`Decision`.

>>> from sftlab.data.record import Conversation, Turn
>>> rec = Conversation([Turn("user", "Write a letter"), Turn("assistant", "Dear {{name}}, hello")])
>>> PlaceholderFilter().check(rec)
('unfilled_placeholder', '{{name}}')
"""

from __future__ import annotations

import re
from functools import cached_property

from sftlab.data.record import Conversation, Record
from sftlab.data.steps.base import Decision, RecordStep
from sftlab.data.steps.text import CJK_CLASS, field_text, script_counts, words
from sftlab.recipe.sections.curation import (
    AmbiguousFilterConfig,
    BoilerplateFilterConfig,
    GarbledFilterConfig,
    LanguageFilterConfig,
    LengthFilterConfig,
    OffTopicFilterConfig,
    PlaceholderFilterConfig,
    RepetitionFilterConfig,
    TimeSensitiveFilterConfig,
)

Verdict = tuple[str, str | None] | None
_FENCE = re.compile(r"```.*?(?:```|$)", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]+`")


def _prose(text: str) -> str:
    """Text without code (fenced or inline): code legitimately has symbols, braces and repeats."""
    if "`" not in text:
        return text
    return _INLINE_CODE.sub(" ", _FENCE.sub(" ", text))


def _user_text(record: Record) -> str:
    if isinstance(record, Conversation):
        return "\n".join(t.content for t in record.turns if t.role == "user")
    return record.text


def _answer_text(record: Record) -> str:
    if isinstance(record, Conversation):
        return "\n".join(t.content for t in record.turns if t.role == "assistant")
    return record.text


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


def _regexes(patterns: list[str]) -> list[re.Pattern]:
    """One alternation (a single scan of the text) instead of one scan per pattern."""
    return [re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)] if patterns else []


def _first_match(patterns: list[re.Pattern], text: str) -> str | None:
    for p in patterns:
        m = p.search(text)
        if m:
            return m.group(0)
    return None


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
        prose = _prose(text)
        if len(prose.strip()) >= self.cfg.min_chars:
            sym = symbol_ratio(prose)
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
        counts = script_counts(_prose(field_text(record, self.cfg.field)))
        total = sum(counts.values())
        if not total:
            return None
        share = sum(n for s, n in counts.items() if s in self.allowed) / total
        if share < self.cfg.min_share:
            return "language_not_allowed", counts.most_common(1)[0][0]
        return None


# ── boilerplate and refusals ──────────────────────────────────────────────
BOILERPLATE = [
    r"\bas an? (?:ai|artificial intelligence)(?: language)? (?:model|assistant|chatbot)\b",
    r"\bas a (?:large )?language model\b",
    r"\bi(?: am|'m) (?:just |only )?an? (?:ai|artificial intelligence)(?: language)? (?:model|assistant)\b",
    r"\bi(?: am|'m) not able to (?:browse|access) the internet\b",
    r"\bmy (?:knowledge cutoff|training data (?:only )?goes up to)\b",
    r"作为一?[个名]?(?:AI|人工智能|语言模型|大型语言模型|AI语言模型|人工智能语言模型|AI助手|人工智能助手)",
    r"我(?:只)?是一?[个名](?:AI|人工智能)(?:语言模型|助手|模型)",
]
REFUSALS = [
    r"^\W*(?:i'?m|i am) (?:very |really )?sorry,? (?:but )?i (?:can(?:'|no)?t|cannot|am unable to|won'?t)\b",
    r"\bi (?:can(?:'|no)?t|cannot|won'?t) (?:help|assist|provide|comply|fulfill|do that|answer)(?: you)?(?: with)? (?:that|this|your request)\b",
    r"\bi(?:'m| am) (?:unable|not able) to (?:help|assist|provide|comply|fulfill)\b",
    r"^\W*(?:抱歉|对不起|很抱歉)[，,]?\s*我(?:无法|不能|没办法)",
    r"我(?:无法|不能)(?:帮助|协助|提供|回答)(?:你|您)?(?:完成)?(?:这个|此|该)(?:请求|问题)",
]


class BoilerplateFilter(Filter):
    """``boilerplate`` ("As an AI language model…", "作为一个AI语言模型…") and ``refusal`` templates in answers."""

    config_class = BoilerplateFilterConfig

    @cached_property
    def _boiler(self) -> list[re.Pattern]:
        return _regexes(BOILERPLATE + list(self.cfg.extra_patterns))

    @cached_property
    def _refusal(self) -> list[re.Pattern]:
        return _regexes(REFUSALS)

    def check(self, record: Record) -> Verdict:
        answer = _answer_text(record)
        hit = _first_match(self._boiler, answer)
        if hit:
            return "boilerplate", hit
        if self.cfg.refusals:
            hit = _first_match(self._refusal, answer.strip())
            if hit:
                return "refusal", hit
        return None


# ── prompts that refer to missing context ─────────────────────────────────
_VERBS = (
    r"analy[sz]e|summari[sz]e|translate|rewrite|paraphrase|explain|proofread|fix|correct|review|"
    r"classify|improve|shorten|edit|check|continue|debug|simplify|evaluate|critique|grade|describe"
)
_REFS = (
    r"this|that|it|these|those|the following|the above|below|the text|the passage|the article|"
    r"the paragraph|the code|the document|the essay|the sentence|the email|the image|the table|my code|my essay"
)
AMBIGUOUS = [
    rf"^(?:please |can you |could you |kindly )?(?:{_VERBS})(?: (?:for me|please))?(?: (?:{_REFS}))(?: (?:for me|please|text|code|passage))?\W*$",
    r"^(?:what does (?:this|it) mean|what is this|(?:is|are) (?:this|these) correct|any thoughts on this)\W*$",
    r"^(?:请|帮我|请帮我)?(?:分析|总结|概括|翻译|改写|解释|润色|检查|修改|评价|续写)(?:一下)?(?:这|这个|这段|这篇|以下|下面|上面|下列)(?:的)?(?:内容|文字|段落|文本|代码|文章|句子|话)?\W*$",
]


class AmbiguousFilter(Filter):
    """``ambiguous_reference``: "summarize the following" with nothing following, and no earlier context."""

    config_class = AmbiguousFilterConfig

    @cached_property
    def _patterns(self) -> list[re.Pattern]:
        return _regexes(AMBIGUOUS)

    def check(self, record: Record) -> Verdict:
        if not isinstance(record, Conversation) or record.system:
            return None  # a system prompt may carry the material
        first = next((t for t in record.turns if t.role == "user"), None)
        if first is None or record.turns[0] is not first:
            return None
        prompt = first.content.strip()
        if len(words(prompt)) > self.cfg.max_prompt_words:
            return None
        hit = _first_match(self._patterns, prompt)
        return ("ambiguous_reference", hit) if hit else None


# ── time-sensitive prompts ────────────────────────────────────────────────
_NOW = r"today'?s?|current(?:ly)?|latest|live|real[- ]?time|right now|now|this (?:week|month|morning)'?s?|tonight'?s?|up[- ]to[- ]date|at the moment"
_TOPIC = (
    r"stock|share price|prices?|weather|forecast|news|headlines|exchange rate|scores?|temperature|"
    r"traffic|bitcoin|crypto|election results?|trending|interest rates?"
)
TIME_SENSITIVE = [
    rf"\b(?:{_NOW})\b[^.?!\n]{{0,40}}\b(?:{_TOPIC})\b",
    rf"\b(?:{_TOPIC})\b[^.?!\n]{{0,30}}\b(?:today|right now|currently|at the moment|this week|tonight)\b",
    r"\bwhat(?:'s| is) (?:the )?(?:time|date|day) (?:is it )?(?:now|today|right now)\b",
    r"\bwhat (?:time|day|date) is it\b",
    r"(?:今天|现在|目前|当前|最新|实时|今日)[^。？！\n]{0,10}(?:股价|天气|新闻|汇率|比分|气温|价格|头条|热搜|行情)",
    r"(?:股价|天气|新闻|汇率|比分|气温|行情)[^。？！\n]{0,6}(?:今天|现在|目前|怎么样)",
]


class TimeSensitiveFilter(Filter):
    """``time_sensitive``: prompts whose right answer changes with the date (prices, weather, news)."""

    config_class = TimeSensitiveFilterConfig

    @cached_property
    def _patterns(self) -> list[re.Pattern]:
        return _regexes(TIME_SENSITIVE + list(self.cfg.extra_patterns))

    def check(self, record: Record) -> Verdict:
        hit = _first_match(self._patterns, _user_text(record))
        return ("time_sensitive", hit) if hit else None


# ── unfilled placeholders ─────────────────────────────────────────────────
PLACEHOLDERS = [
    r"\{\{\s*[^{}\n]{1,40}?\s*\}\}",  # {{name}}
    r"\[[A-Z][A-Z0-9_]*(?: [A-Z0-9_]+)*\](?!\()",  # [NAME], [COMPANY NAME]; not a markdown link
    r"\[(?:your|insert|enter|add|recipient'?s?|company|client|customer)\b[^\]\n]{0,40}\](?!\()",
    r"<[A-Z][A-Z0-9_]{2,}>",  # <PLACEHOLDER>
    r"\{[a-z]+(?:_[a-z]+)+\}|\{(?:name|date|company|address|email|phone|city|title|product)\}",
    r"[\[【](?:姓名|名字|你的名字|您的名字|公司名称|公司|地址|日期|电话|邮箱|收件人|产品名称)[\]】]",
]


class PlaceholderFilter(Filter):
    """``unfilled_placeholder``: template slots nobody filled (``{{name}}``, ``[NAME]``, ``<PLACEHOLDER>``, ``[姓名]``)."""

    config_class = PlaceholderFilterConfig

    # Upper-case words in brackets that are real text, not slots.
    _ALLOWED = {
        "[A]",
        "[B]",
        "[C]",
        "[D]",
        "[OK]",
        "[TODO]",
        "[PDF]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "[UNK]",
        "[PAD]",
    }

    @cached_property
    def _patterns(self) -> list[re.Pattern]:
        # Case-sensitive on purpose: [NAME] is a slot, [name] in prose usually is not.
        return [
            re.compile(p) if i < 2 or i == 3 else re.compile(p, re.IGNORECASE)
            for i, p in enumerate(PLACEHOLDERS)
        ]

    def check(self, record: Record) -> Verdict:
        text = _prose(field_text(record, self.cfg.field))
        for p in self._patterns:
            for m in p.finditer(text):
                if m.group(0) not in self._ALLOWED:
                    return "unfilled_placeholder", m.group(0)
        return None


# ── repetition ────────────────────────────────────────────────────────────


def ngram_repeat_ratio(tokens: list[str], n: int) -> float:
    """Share of n-grams that repeat an earlier one (0 = all distinct)."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def line_repeat_ratio(text: str) -> float:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return 1 - len(set(lines)) / len(lines) if len(lines) >= 3 else 0.0


class RepetitionFilter(Filter):
    """``repetition``: answers that loop (repeated n-grams or lines)."""

    config_class = RepetitionFilterConfig

    def check(self, record: Record) -> Verdict:
        answer = _prose(_answer_text(record))
        tokens = words(answer)
        if len(tokens) < self.cfg.min_words:
            return None
        r = ngram_repeat_ratio(tokens, self.cfg.ngram)
        if r > self.cfg.max_ngram_repeat_ratio:
            return "repetition", f"{r:.0%} repeated {self.cfg.ngram}-grams"
        r = line_repeat_ratio(answer)
        if r > self.cfg.max_line_repeat_ratio:
            return "repetition", f"{r:.0%} repeated lines"
        return None


# ── answers that ignore the prompt (opt-in) ───────────────────────────────
STOPWORDS = set(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "i",
        "you",
        "he",
        "she",
        "we",
        "they",
        "me",
        "him",
        "her",
        "us",
        "them",
        "my",
        "your",
        "our",
        "their",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "all",
        "any",
        "both",
        "each",
        "few",
        "more",
        "most",
        "other",
        "some",
        "such",
        "no",
        "nor",
        "not",
        "only",
        "own",
        "same",
        "so",
        "than",
        "too",
        "very",
        "can",
        "will",
        "just",
        "should",
        "now",
        "do",
        "does",
        "did",
        "doing",
        "have",
        "has",
        "had",
        "having",
        "about",
        "above",
        "after",
        "again",
        "against",
        "below",
        "between",
        "into",
        "through",
        "during",
        "before",
        "under",
        "over",
        "out",
        "up",
        "down",
        "off",
        "then",
        "once",
        "here",
        "there",
        "please",
        "write",
        "give",
        "tell",
        "explain",
        "make",
        "using",
        "use",
        "also",
        "would",
        "could",
        "may",
        "might",
        "must",
        "shall",
    ]
)
_CJK_RUN = re.compile(f"[{CJK_CLASS}]+")


def keywords(text: str) -> set[str]:
    """Content words (stemmed to 5 letters) plus CJK character bigrams."""
    out = {w[:5] for w in words(text) if len(w) > 2 and w not in STOPWORDS and not w.isdigit()}
    for run in _CJK_RUN.findall(text):
        out.update(run[i : i + 2] for i in range(len(run) - 1))
    return {k for k in out if not _CJK_RUN.fullmatch(k) or len(k) == 2}


class OffTopicFilter(Filter):
    """``off_topic``: a long prompt whose keywords almost never appear in the answer. Conservative; opt in."""

    config_class = OffTopicFilterConfig

    def check(self, record: Record) -> Verdict:
        if not isinstance(record, Conversation):
            return None
        prompt = keywords(_user_text(record))
        if len(prompt) < self.cfg.min_prompt_keywords:
            return None
        answer = keywords(record.response)
        overlap = len(prompt & answer) / len(prompt)
        if overlap < self.cfg.min_overlap:
            return "off_topic", f"{overlap:.0%} of {len(prompt)} prompt keywords in the answer"
        return None
