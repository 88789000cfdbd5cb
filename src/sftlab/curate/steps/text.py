"""Text helpers shared by the curation steps: which text a step looks at, prose without code, CJK-aware
words, scripts.

>>> words("Hello, 世界 again")
['hello', '世', '界', 'again']
>>> dominant_script("Привет мир")
'cyrillic'
>>> norm_key("  Hello\\n  WORLD ")
'hello world'
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from sftlab.data.record import Conversation, Record

# Han, kana, hangul, CJK punctuation/compatibility blocks: one character carries a word's meaning.
CJK_CLASS = (
    "\u2e80-\u2fdf\u3040-\u30ff\u3100-\u312f\u3130-\u318f\u31a0-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002ebef"
)
_CJK_CHAR = re.compile(f"[{CJK_CLASS}]")
_WORD = re.compile(f"[{CJK_CLASS}]|[^\\W{CJK_CLASS}]+", re.UNICODE)
_PLAIN_WORD = re.compile(r"\w+")
_ASCII_NON_WORD = {c: " " for c in range(128) if not (chr(c).isalnum() or c == 95)}
_SPACE = re.compile(r"\s+")
# A fence opens with ``` or ~~~ (3 or more) and closes with the same run; an unclosed fence
# runs to the end of the text, so a truncated answer still has its code hidden.
_BACKTICK_FENCE = re.compile(r"(`{3,}).*?(?:\1|\Z)", re.DOTALL)  # also mid-line: "see:```py ...```"
_TILDE_FENCE = re.compile(
    r"^[ \t]{0,3}(~{3,})[^\n]*\n.*?(?:^[ \t]{0,3}\1[ \t]*$|\Z)", re.DOTALL | re.MULTILINE
)
# An indented code block (4 spaces or a tab) starts after a blank line, as in Markdown: a list item's
# wrapped line is not code.
_INDENTED = re.compile(r"(?:\A|\n[ \t]*\n)((?:(?: {4}|\t)[^\n]*(?:\n|\Z)|[ \t]*\n(?= {4}|\t))+)")
_INLINE_CODE = re.compile(r"`[^`\n]+`")


def field_text(record: Record, field: str) -> str:
    """The text a step compares: ``prompt``, ``response``, ``prompt+response`` or ``all``."""
    if not isinstance(record, Conversation):
        return record.text
    if field == "prompt":
        return record.prompt_text()
    if field == "response":
        return record.response
    if field == "prompt+response":
        return record.prompt_text() + "\n" + record.response
    return record.all_text()


def prose_only(text: str) -> str:
    """``text`` with its code removed (fenced with ``` or ~~~, indented, inline), for checks that judge prose.

    Code legitimately repeats lines (``}``, ``end``), is full of symbols and has short or long lines; a
    heuristic that reads prose (repeated lines, symbol ratio, line lengths, scripts) must not count it,
    or it rejects most programming answers. Each block leaves a blank line, so paragraphs stay apart.

    >>> prose_only("Run `x[i]` then:\\n```py\\nfor i in x: pass\\n```\\ndone")
    'Run   then:\\n\\n\\ndone'
    >>> prose_only("Example:\\n\\n    x = 1\\n    y = 2\\n\\nThat is all.\\n~~~\\ncode\\n~~~")
    'Example:\\n\\n\\nThat is all.\\n\\n'
    """
    if "```" in text:
        text = _BACKTICK_FENCE.sub("\n", text)
    if "~~~" in text:
        text = _TILDE_FENCE.sub("\n", text)
    if "    " in text or "\t" in text:
        text = _INDENTED.sub("\n\n", text)
    return _INLINE_CODE.sub(" ", text) if "`" in text else text


def code_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every code block and inline code span, the parts :func:`prose_only` removes.

    >>> code_spans("a `b` c")
    [(2, 5)]
    """
    spans: list[tuple[int, int]] = []
    if "```" in text:
        spans += [m.span() for m in _BACKTICK_FENCE.finditer(text)]
    if "~~~" in text:
        spans += [m.span() for m in _TILDE_FENCE.finditer(text)]
    if "    " in text or "\t" in text:
        spans += [m.span(1) for m in _INDENTED.finditer(text)]
    if "`" in text:
        spans += [m.span() for m in _INLINE_CODE.finditer(text)]
    return sorted(spans)


def norm_key(text: str) -> str:
    """Casefolded with whitespace collapsed: the identity used by exact dedup and conflicts."""
    return _SPACE.sub(" ", text.casefold()).strip()


def words(text: str) -> list[str]:
    """Lower-cased words; each CJK character counts as a word (no spaces between them)."""
    text = text.lower()
    if text.isascii():  # the common case: a C-speed translate + split gives the same words as \w+
        return text.translate(_ASCII_NON_WORD).split()
    if _CJK_CHAR.search(text) is None:
        return _PLAIN_WORD.findall(text)
    return _WORD.findall(text)


def is_cjk(ch: str) -> bool:
    return bool(_CJK_CHAR.match(ch))


def has_cjk(text: str) -> bool:
    return _CJK_CHAR.search(text) is not None


_SCRIPT_PREFIXES = (
    ("LATIN", "latin"),
    ("CJK", "cjk"),
    ("HIRAGANA", "cjk"),
    ("KATAKANA", "cjk"),
    ("HANGUL", "cjk"),
    ("CYRILLIC", "cyrillic"),
    ("ARABIC", "arabic"),
    ("GREEK", "greek"),
    ("HEBREW", "hebrew"),
    ("DEVANAGARI", "devanagari"),
    ("THAI", "thai"),
)


def char_script(ch: str) -> str:
    """Script of one letter from its Unicode name (``other`` when unknown)."""
    if ch.isascii():
        return "latin"
    if is_cjk(ch):
        return "cjk"
    name = unicodedata.name(ch, "")
    for prefix, script in _SCRIPT_PREFIXES:
        if name.startswith(prefix):
            return script
    return "other"


_SCRIPT_RES = {
    "latin": re.compile("[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff]"),
    "cjk": _CJK_CHAR,
    "cyrillic": re.compile("[\u0400-\u052f]"),
    "arabic": re.compile("[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff]"),
    "greek": re.compile("[\u0370-\u03ff\u1f00-\u1fff]"),
    "hebrew": re.compile("[\u0590-\u05ff]"),
    "devanagari": re.compile("[\u0900-\u097f]"),
    "thai": re.compile("[\u0e00-\u0e7f]"),
}
_LETTER = re.compile(r"[^\W\d_]")
_ASCII_LETTER = re.compile(r"[A-Za-z]")


def script_counts(text: str) -> Counter:
    """How many letters of each script ``text`` has (digits, spaces, punctuation ignored).

    >>> dict(script_counts("Hi Привет 你好"))
    {'latin': 2, 'cjk': 2, 'cyrillic': 6}
    """
    if text.isascii():
        n = len(_ASCII_LETTER.findall(text))
        return Counter({"latin": n}) if n else Counter()
    counts: Counter = Counter()
    for script, pattern in _SCRIPT_RES.items():
        n = len(pattern.findall(text))
        if n:
            counts[script] = n
    other = len(_LETTER.findall(text)) - sum(counts.values())
    if other > 0:
        counts["other"] = other
    return counts


def dominant_script(text: str) -> str | None:
    counts = script_counts(text)
    return counts.most_common(1)[0][0] if counts else None
