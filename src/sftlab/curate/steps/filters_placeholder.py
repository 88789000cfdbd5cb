"""The ``placeholder`` filter: fill-in-the-blank slots left in an answer (``[Your Name]``, ``{{name}}``).

A slot is a few *words describing what to insert*, in brackets, written so that
a person notices it: title case or capitals (``[Company Name]``, ``[NAME]``), or
an instruction (``[insert date]``, ``<your email>``), or a mask (``XXX``, ``[X]``).
What looks the same but is not a slot, and stays:

* code and maths — identifiers cannot hold spaces, so ``{name}`` (f-string,
  JSX), ``E[X]``, ``&[T]``, ``arr[INDEX]`` and ``List<T>`` never match: a bracket
  glued to a word or symbol is indexing or a type, and single braces need words;
  fenced and inline code is skipped;
* markup — ``<IBAN>…</IBAN>`` is an element, ``[text](url)`` a link;
* notation — ``[A]`` answer options, ``[1]`` citations, ``[T]here`` editorial
  brackets, ``[Chorus]`` or ``[laughs]`` stage directions (no word naming a thing
  to insert);
* the prompt — a template in the *prompt* (``[TASK TYPE]: Article``) is the
  user's business; only answers are trained on, so only answers are read for
  slots. The exception is a ``{{variable}}`` left by the templating step that
  built the prompt (``Hi {{customer_name}}``): no user writes that, and training
  on it teaches the model prompts that inference never sends.

>>> from sftlab.data.record import Conversation, Turn
>>> check = lambda a: PlaceholderFilter().check(Conversation([Turn("user", "Letter"), Turn("assistant", a)]))
>>> check("Best regards,\\n[Your Name]")
('unfilled_placeholder', 'turn 2: [Your Name]')
>>> check("E[X] = sum(x * p(x)); in JSX write {name}; Rust slices are &[T].") is None
True
"""

from __future__ import annotations

import re
from functools import cached_property

from sftlab.curate.steps.filters import Filter, Verdict, answers, prose
from sftlab.data.record import Conversation, Record
from sftlab.recipe.sections.curation import PlaceholderFilterConfig

# Words that ask for something to be inserted: a bracket holding one is a slot ("[Name of your project]",
# "[insert date]"); the verbs only when they open it ("{ operation: 'add' }" is an object).
_ASK = (
    r"^(?:insert|enter|add|fill(?: in)?|specify|include)\b|\b(?:your|placeholder|tbd|tba|redacted)\b"
    r"|^(?:je|jouw|uw|votre|ton|ta|ihr|ihre|dein|deine|tu|su|seu|sua|tuo|tua|vostro|vostra)\s"  # "your" elsewhere
)
# Things a template asks for. In title case or capitals ("[Company Name]", "[DATE]") they name a slot.
_THING = (
    r"names?|date|time|day|month|year|deadline|company|business|firm|agency|organi[sz]ation|employer|brand|"
    r"product|service|app|website|url|link|platform|event|venue|program(?:me)?|project|course|school|"
    r"university|college|department|team|industry|field|subject|topic|title|position|role|job|degree|"
    r"address|street|city|state|country|region|location|zip|e-?mail|phone|number|amount|price|fee|budget|"
    r"salary|percentage|discount|recipient|client|customer|contact|person|member|employee|student|manager|"
    r"candidate|donor|prospect|sponsor|partner|signature|details|information|description|username"
)
_ASK_RE = re.compile(_ASK, re.IGNORECASE)
_THING_RE = re.compile(_THING)
_TOKENS = re.compile(r"[a-z]+(?:-[a-z]+)*")  # "fee-ren" is one word, not "fee"
_MINOR = {
    "of",
    "and",
    "or",
    "the",
    "a",
    "an",
    "for",
    "to",
    "in",
    "on",
    "at",
    "with",
    "from",
    "by",
    "if",
    "any",
}
_WORDS = re.compile(r"[^\W\d_][\w'’.-]*")
# What a slot may hold: words, spaces and a little punctuation; no operators, quotes or nesting.
_SLOT_BODY = r"[^\W_][\w '’&/,.:#\\-]{0,58}"

# Each candidate form; the bracketed words are judged by ``_is_slot``.
_DOUBLE_BRACE = re.compile(r"(?<![\w\\_^$])\{\{\s*([\w .\\-]{1,40}?)\s*\}\}")
# {{ user.name }}, {{#if x}}, {{/if}}: a text holding expressions like these explains a template language.
_TEMPLATE_CODE = re.compile(r"\{\{[^{}\n]*?(?:[.#/(|=]|\s(?:if|else|for|in)\s)[^{}\n]*\}\}")
_SQUARE = re.compile(rf"(?<![\w\])}}&.'\\$^!])\[\s*({_SLOT_BODY}?)\s*\](?![\w(\[])")
_ANGLE = re.compile(rf"(?<![\w<])<\s*({_SLOT_BODY}?)\s*>(?![\w])")
_BRACE = re.compile(rf"(?<![\w\\$^_{{])\{{\s*({_SLOT_BODY}?)\s*\}}(?![\w}}])")
_CJK = re.compile(
    r"[\[【]((?:你的|您的)?(?:姓名|名字|公司名称|公司名|地址|日期|电话|邮箱|收件人|产品名称|职位|学校))[\]】]"
)
# Masks standing for a number or code nobody filled in: XXX, XXX-XXXX, $X,XXX, [X] years.
_MASK = re.compile(
    r"(?<![\w\\-])(?:\$X+(?:,X{3})*(?:\.X+)?(?!\s*[=\\^_{}(),])|X{3,}(?:[-/.]X{2,})*|\[X{1,3}\])(?![\w$-])"
)


# A prompt line that is code pasted without fences (a template in a string, an assignment, a tag):
# its {{variables}} belong to the code the user asks about.
_CODE_LINE = re.compile(r"[=;]|</?\w[^>]*>|\{%|['\"`][^'\"`]*\{\{")


def _title_or_caps(words: list[str]) -> bool:
    """Every word that is not a small joining word starts with a capital (``Name of Company``)."""
    major = [w for w in words if w.lower() not in _MINOR]
    return bool(major) and all(w[0].isupper() for w in major)


def _is_slot(body: str, kind: str) -> bool:
    """Do the words in brackets describe something to insert?"""
    body = body.replace("\\_", "_")  # markdown-escaped underscores (``customer\\_name``)
    if kind == "double_brace":
        return True  # {{ ... }} holding plain words is mustache/jinja slot syntax even in prose
    if "://" in body:
        return False  # <https://…>: an autolink
    if ":" in body and not _ASK_RE.search(body):
        return False  # [Title: Growing Chillis at Home]: a label with its value, filled in
    spaced = body.replace("_", " ")
    if _ASK_RE.search(spaced):
        return True
    words = _WORDS.findall(spaced)
    if not words or sum(len(w) for w in words) < 3:
        return False  # [A], [i], [1], <T>: options, indices, citations, type parameters
    if kind != "square" and len(words) == 1 and not body.isupper():
        return False  # {name}, <name>: code and markup use one lower/camel-case identifier
    tokens = [t for t in _TOKENS.findall(spaced.lower()) if t not in _MINOR and t != "s"]
    things = [t for t in tokens if _THING_RE.fullmatch(t)]
    if not things:
        return False
    # [Company Name], [DATE]: a thing to insert, written to stand out. In square brackets also lower case
    # made of such things or led by one: [company name], [date of outage] ("[smirks]", "[to Joker]" are not);
    # braces in lower case are code ({ field, form }, {time_limit}).
    lower_slot = kind == "square" and (len(things) == len(tokens) or things[0] == tokens[0])
    return _title_or_caps(words) or lower_slot


class PlaceholderFilter(Filter):
    """``unfilled_placeholder``: a template slot nobody filled in an answer; the detail names turn and token."""

    config_class = PlaceholderFilterConfig

    @cached_property
    def _forms(self) -> list[tuple[str, re.Pattern]]:
        return [("double_brace", _DOUBLE_BRACE), ("square", _SQUARE), ("angle", _ANGLE), ("brace", _BRACE)]

    def find(self, text: str, kinds: tuple[str, ...] | None = None) -> str | None:
        """The first slot in ``text`` outside code (of the given ``kinds`` of brackets), or None.

        An answer that is nothing but one bracketed expression is a value (a list, a label, an entity tag
        such as ``[Lender - PERSON]``), not a template: templates leave their slots inside text.
        """
        text = prose(text)
        if text.strip()[:1] in "[{<" and text.strip()[-1:] in "]}>" and "\n" not in text.strip():
            return None
        template_code = "{{" in text and _TEMPLATE_CODE.search(text) is not None
        for kind, pattern in self._forms:
            if (kind == "double_brace" and template_code) or (kinds is not None and kind not in kinds):
                continue
            for m in pattern.finditer(text):
                if kind == "angle" and f"</{m.group(1).strip()}>" in text:
                    continue  # <IBAN>…</IBAN>: an XML element, not a slot
                if _is_slot(m.group(1), kind):
                    return m.group(0)
        if kinds is not None:
            return None
        m = _CJK.search(text) or _MASK.search(text)
        return m.group(0) if m else None

    def check(self, record: Record) -> Verdict:
        for where, text in self._texts(record):
            token = self.find(text)
            if token:
                return "unfilled_placeholder", f"{where}: {token}"
        if self.cfg.field == "answers" and isinstance(record, Conversation):
            for where, text in self._prompts(record):
                prose_lines = "\n".join(line for line in text.splitlines() if not _CODE_LINE.search(line))
                token = self.find(prose_lines, kinds=("double_brace",))
                if token:
                    return "unfilled_placeholder", f"{where}: {token}"
        return None

    @staticmethod
    def _prompts(record: Conversation) -> list[tuple[str, str]]:
        system = [("system", record.system)] if record.system else []
        return system + [
            (f"turn {n}", t.content) for n, t in enumerate(record.turns, 1) if t.role != "assistant"
        ]

    def _texts(self, record: Record) -> list[tuple[str, str]]:
        """``(where, text)`` pairs to read: the answers, or with ``field: all`` every turn and the system prompt."""
        if self.cfg.field == "answers" or not isinstance(record, Conversation):
            return [(f"turn {n}", text) for n, text in answers(record)]
        system = [("system", record.system)] if record.system else []
        return system + [(f"turn {n}", t.content) for n, t in enumerate(record.turns, 1)]
