"""What a record is about — ``code``, ``maths``, ``prose`` or ``other`` — and its script, for selection.

Quality signals tuned on prose (repeated lines, symbol ratios, length) can
quietly remove a whole domain: on a ShareGPT dump, code answers were 27% of
the pool and 1% of a selection. So the ``select`` step reports each domain's
share in the pool next to its share in the selection, and ``stratify: domain``
keeps those shares (:func:`domain_quotas`).

The rules are deliberately simple and visible (first match wins):

* ``code``  — an answer holds a fenced block (```` ``` ```` or ``~~~``), or at
  least three lines that read as code (``def``/``class``/``import``/``#include``,
  lines ending in ``;`` or ``{``, a lone ``}``);
* ``maths`` — LaTeX (``$…$``, ``\\frac``, ``\\sum``…), or at least two equations
  written with digits (``3x + 2 = 11``), or a prompt asking to solve, prove,
  differentiate or integrate;
* ``prose`` — an answer of at least ``PROSE_WORDS`` words;
* ``other`` — the rest: short answers, labels, tool calls.

>>> from sftlab.data.record import Conversation, Turn
>>> c = lambda q, a: Conversation(turns=[Turn("user", q), Turn("assistant", a)])
>>> domain_of(c("Reverse a list", "Use:\\n```python\\nxs[::-1]\\n```"))
'code'
>>> domain_of(c("Solve 3x + 2 = 11", "Subtract 2: 3x = 9, so x = 3."))
'maths'
>>> domain_of(c("Capital of France?", "Paris."))
'other'
>>> domain_quotas({"code": 30, "prose": 69, "other": 1}, 10)
{'code': 3, 'other': 0, 'prose': 7}
"""

from __future__ import annotations

import math
import re
from collections import Counter

from sftlab.curate.steps.text import dominant_script
from sftlab.data.record import Conversation, Record

DOMAINS = ("code", "maths", "prose", "other")
PROSE_WORDS = 20

_FENCE = re.compile(r"^\s*(```|~~~)", re.MULTILINE)
_CODE_LINE = re.compile(
    r"^\s*(?:def |class \w|import \w|from \w+ import |#include|function\s*\w*\(|public |private |"
    r"(?:const|let|var) \w+ ?=|SELECT |CREATE TABLE|\}\s*$)"
    r"|[;{]\s*$",
    re.MULTILINE,
)
_LATEX = re.compile(r"\$[^$\n]+\$|\\(?:frac|sum|int|sqrt|cdot|times|alpha|beta|theta|pi|lim|infty)\b")
_EQUATION = re.compile(r"\d\s*[a-z]?\s*[-+*/^×÷]\s*\(?\d*[a-z]?\)?\s*=\s*-?\d")
_MATH_ASK = re.compile(
    r"\b(?:solve|prove|derivative|differentiate|integral|integrate|equation|calculate)\b", re.IGNORECASE
)


def _answers(record: Record) -> list[str]:
    if not isinstance(record, Conversation):
        return [record.text]
    return [t.content for t in record.turns if t.role == "assistant" and t.content]


def domain_of(record: Record) -> str:
    """``code``, ``maths``, ``prose`` or ``other`` (the rules in the module docstring)."""
    answers = _answers(record)
    text = "\n".join(answers)
    if _FENCE.search(text) or len(_CODE_LINE.findall(text)) >= 3:
        return "code"
    prompt = record.prompt_text() if isinstance(record, Conversation) else ""
    if _LATEX.search(text) or len(_EQUATION.findall(text)) >= 2 or _MATH_ASK.search(prompt):
        return "maths"
    if len(text.split()) >= PROSE_WORDS:
        return "prose"
    return "other"


def script_of(record: Record) -> str:
    """The dominant script of the record's text (``latin``, ``cjk``, ``cyrillic``…), ``none`` without letters."""
    return dominant_script(record.all_text()) or "none"


def domain_quotas(pool: dict[str, int], budget: int) -> dict[str, int]:
    """Records per domain so that the selection keeps the pool's shares (largest remainder rounding)."""
    total = sum(pool.values())
    if not total:
        return {}
    exact = {d: budget * n / total for d, n in sorted(pool.items())}
    quotas = {d: math.floor(x) for d, x in exact.items()}
    left = min(budget, total) - sum(quotas.values())
    for d in sorted(exact, key=lambda d: quotas[d] - exact[d])[: max(left, 0)]:
        quotas[d] += 1
    return {d: min(q, pool[d]) for d, q in quotas.items()}


def share_table(pool: list[str], selected: list[str]) -> dict[str, dict[str, float | int]]:
    """Per value: count and share (%) in the pool and in the selection, and the difference in points."""
    p, s = Counter(pool), Counter(selected)
    rows = {}
    for key in sorted(p, key=lambda k: (-p[k], k)):
        pool_share = 100 * p[key] / len(pool) if pool else 0.0
        sel_share = 100 * s[key] / len(selected) if selected else 0.0
        rows[key] = {
            "pool": p[key],
            "pool_share": round(pool_share, 1),
            "selected": s[key],
            "selected_share": round(sel_share, 1),
            "points": round(sel_share - pool_share, 1),
        }
    return rows
