"""The ``repetition`` filter: answers that loop, judged one answer at a time.

Why one at a time: in a multi-turn conversation the answers legitimately repeat
*each other* — a series of rewrites of one text, several listings from one
template, the same code with one line changed. Joined together they looked like
a loop (on a ShareGPT dump 85% of the rejects were such conversations, with no
single answer repeating itself). ``across_turns: true`` also compares the answers
with each other, for data where that repetition is itself a defect.

>>> from sftlab.data.record import Conversation, Turn
>>> loop = "the cat sat on the mat " * 8
>>> RepetitionFilter().check(Conversation([Turn("user", "Poem"), Turn("assistant", loop)]))
('repetition', 'turn 2: 87% repeated 3-grams')
"""

from __future__ import annotations

from sftlab.data.record import Record
from sftlab.data.steps.filters import Filter, Verdict, answers, prose
from sftlab.data.steps.text import words
from sftlab.recipe.sections.curation import RepetitionFilterConfig


def ngram_repeat_ratio(tokens: list[str], n: int) -> float:
    """Share of n-grams that repeat an earlier one (0 = all distinct).

    >>> ngram_repeat_ratio("a b a b a b".split(), 2)
    0.6
    """
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def line_repeat_ratio(text: str) -> float:
    """Share of non-empty lines that repeat an earlier line (0 below three lines)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return 1 - len(set(lines)) / len(lines) if len(lines) >= 3 else 0.0


class RepetitionFilter(Filter):
    """``repetition``: an answer that loops (repeated n-grams or lines); the detail names the turn."""

    config_class = RepetitionFilterConfig

    def looping(self, text: str) -> str | None:
        """What repeats in ``text`` (code removed), or None when it reads as a normal answer."""
        text = prose(text)
        tokens = words(text)
        if len(tokens) < self.cfg.min_words:
            return None
        r = ngram_repeat_ratio(tokens, self.cfg.ngram)
        if r > self.cfg.max_ngram_repeat_ratio:
            return f"{r:.0%} repeated {self.cfg.ngram}-grams"
        r = line_repeat_ratio(text)
        if r > self.cfg.max_line_repeat_ratio:
            return f"{r:.0%} repeated lines"
        return None

    def check(self, record: Record) -> Verdict:
        turns = answers(record)
        for number, text in turns:
            found = self.looping(text)
            if found:
                return "repetition", f"turn {number}: {found}"
        if self.cfg.across_turns and len(turns) > 1:
            found = self.looping("\n".join(text for _, text in turns))
            if found:
                numbers = ", ".join(str(n) for n, _ in turns)
                return "repetition", f"turns {numbers} together: {found}"
        return None
