"""Pattern filters on what is said: boilerplate and refusals in answers, prompts that refer to
missing context or to the current date, and (opt-in) answers that ignore their prompt.

>>> from sftlab.data.record import Conversation, Turn
>>> BoilerplateFilter().check(Conversation([Turn("user", "Hi"), Turn("assistant", "As an AI language model, no.")]))
('boilerplate', 'As an AI language model')
"""

from __future__ import annotations

import re
from functools import cached_property

from sftlab.curate.steps.filters import Filter, Verdict, answer_text, answers, first_match, regexes, user_text
from sftlab.curate.steps.text import CJK_CLASS, words
from sftlab.data.record import Conversation, Record
from sftlab.recipe.sections.curation import (
    AmbiguousFilterConfig,
    BoilerplateFilterConfig,
    OffTopicFilterConfig,
    TimeSensitiveFilterConfig,
)

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

# After "I can't…": an answer that goes on to deliver something or asks for what it needs is a hedge or a
# clarifying question, not a refusal ("I can't give the exact code; however, here is a sketch").
_GOES_ON = re.compile(
    r"\b(?:however|instead|that said|nonetheless)\b|\bhere(?:'s| is| are)\b|\bbut i can\b"
    r"|\b(?:could|can|would) you (?:please )?(?:provide|clarify|share|tell|give|specify|paste|send|let me know)\b"
    r"|\bplease (?:provide|clarify|share|specify|paste|send|let me know)\b|\blet me know (?:which|what|more)\b"
    r"|但是|不过|以下是|下面是|请提供|请告诉|能否提供|可以提供",
    re.IGNORECASE,
)


class BoilerplateFilter(Filter):
    """``boilerplate`` ("As an AI language model…", "作为一个AI语言模型…") and, opt-in, ``refusal`` in answers.

    A refusal declines and stops; "I can't X, however here is Y" and "I can't tell without the text, could
    you paste it?" are kept.
    """

    config_class = BoilerplateFilterConfig

    @cached_property
    def _boiler(self) -> list[re.Pattern]:
        return regexes(BOILERPLATE + list(self.cfg.extra_patterns))

    @cached_property
    def _refusal(self) -> list[re.Pattern]:
        return regexes(REFUSALS)

    def check(self, record: Record) -> Verdict:
        answer = answer_text(record)
        hit = first_match(self._boiler, answer)
        if hit:
            return "boilerplate", hit
        if self.cfg.refusals:
            for _, text in answers(record):
                text = text.strip()
                for pattern in self._refusal:
                    m = pattern.search(text)
                    if m and not _GOES_ON.search(text, m.end()):
                        return "refusal", m.group(0)
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
        return regexes(AMBIGUOUS)

    def check(self, record: Record) -> Verdict:
        if not isinstance(record, Conversation) or record.system:
            return None  # a system prompt may carry the material
        first = next((t for t in record.turns if t.role == "user"), None)
        if first is None or record.turns[0] is not first:
            return None
        prompt = first.content.strip()
        if len(words(prompt)) > self.cfg.max_prompt_words:
            return None
        hit = first_match(self._patterns, prompt)
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
        return regexes(TIME_SENSITIVE + list(self.cfg.extra_patterns))

    def check(self, record: Record) -> Verdict:
        hit = first_match(self._patterns, user_text(record))
        return ("time_sensitive", hit) if hit else None


# ── answers that ignore the prompt (opt-in) ───────────────────────────────
# A word list as one string: a list literal is formatted one word per line (140 lines).
STOPWORDS = set(
    """a an the and or but if of to in on at by for with from as is are was were be been being it its this that
    these those i you he she we they me him her us them my your our their what which who whom whose when where why
    how all any both each few more most other some such no nor not only own same so than too very can will just
    should now do does did doing have has had having about above after again against below between into through
    during before under over out up down off then once here there please write give tell explain make using use
    also would could may might must shall""".split()  # noqa: SIM905
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
        prompt = keywords(user_text(record))
        if len(prompt) < self.cfg.min_prompt_keywords:
            return None
        answer = keywords(record.response)
        overlap = len(prompt & answer) / len(prompt)
        if overlap < self.cfg.min_overlap:
            return "off_topic", f"{overlap:.0%} of {len(prompt)} prompt keywords in the answer"
        return None
