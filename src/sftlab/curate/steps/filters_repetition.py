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
('repetition', 'turn 2: 87% repeated 3-grams, one span 8 times in a row')
"""

from __future__ import annotations

from sftlab.curate.steps.filters import Filter, Verdict, answers, prose
from sftlab.curate.steps.text import words
from sftlab.data.record import Record
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


def tandem_copies(tokens: list[str], max_period: int = 64) -> int:
    """Most back-to-back copies of one span of words, counting only spans of two or more distinct
    non-numeric words: ``a b a b a b`` is 3 copies; ``0 0 0 0`` or ``down down down`` count as 1.

    Why back to back: a model stuck in a loop writes the same span again and again, while repeated
    *structure* — a chorus between verses, the same rating scale under each survey question, a
    column of equal table cells, a grid of zeros — has other text between its copies or is one token.

    >>> tandem_copies("intro the cat sat the cat sat the cat sat".split())
    3
    >>> tandem_copies("up up up up right right right".split())
    1
    """
    best = 1
    for period in range(1, min(max_period, len(tokens) // 2) + 1):
        run = 0
        for i in range(len(tokens) - period):
            if tokens[i] != tokens[i + period]:
                run = 0
                continue
            run += 1
            copies = run // period + 1
            if copies > best:
                unit = tokens[i + 1 - period : i + 1]
                if len({w for w in unit if not w.isdigit()}) >= 2:
                    best = copies
    return best


class RepetitionFilter(Filter):
    """``repetition``: an answer that loops (repeated n-grams or lines); the detail names the turn."""

    config_class = RepetitionFilterConfig

    def looping(self, text: str, *, back_to_back: bool = True) -> str | None:
        """What repeats in ``text`` (code removed), or None when it reads as a normal answer.

        The repeated-n-gram and repeated-line shares find candidates cheaply; ``back_to_back``
        then asks for a span written ``min_copies`` times in a row, which tells a loop from structure.
        """
        text = prose(text)
        tokens = words(text)
        if len(tokens) < self.cfg.min_words:
            return None
        found = None
        r = ngram_repeat_ratio(tokens, self.cfg.ngram)
        if r > self.cfg.max_ngram_repeat_ratio:
            found = f"{r:.0%} repeated {self.cfg.ngram}-grams"
        elif (r := line_repeat_ratio(text)) > self.cfg.max_line_repeat_ratio:
            found = f"{r:.0%} repeated lines"
        if found is None or not back_to_back:
            return found
        copies = tandem_copies(tokens)
        return f"{found}, one span {copies} times in a row" if copies >= self.cfg.min_copies else None

    def check(self, record: Record) -> Verdict:
        turns = answers(record)
        for number, text in turns:
            found = self.looping(text)
            if found:
                return "repetition", f"turn {number}: {found}"
        if self.cfg.across_turns and len(turns) > 1:
            # Rewrites of one text repeat each other without being back to back word for word.
            found = self.looping("\n".join(text for _, text in turns), back_to_back=False)
            if found:
                numbers = ", ".join(str(n) for n, _ in turns)
                return "repetition", f"turns {numbers} together: {found}"
        return None
