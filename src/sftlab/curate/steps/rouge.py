"""Fast ROUGE-L between a text and everything indexed so far, with exact scores.

ROUGE-L F1 of token sequences a, b is ``2·LCS(a, b) / (|a| + |b|)``. The LCS is
at most the multiset overlap of the two token bags, so an inverted index
(token → indexed ids with counts) gives every indexed text an upper bound in
one vectorised pass; only texts whose bound reaches the floor get an exact LCS
(rapidfuzz, C++). Tokens follow the ``rouge-score`` package (lower case,
ASCII letters/digits runs), extended with one token per CJK character and runs
of other letters, so English scores equal the reference exactly.

>>> index = RougeIndex()
>>> index.add("Write a poem about the sea.")
0
>>> round(index.max_score("Write a short poem about the sea"), 3)
0.923
>>> index.max_score("Translate this sentence into French")
0.0
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
from rapidfuzz.distance import LCSseq

from sftlab.curate.steps.text import CJK_CLASS

_TOKEN = re.compile(f"[a-z0-9]+|[{CJK_CLASS}]|[^\\W\\da-z_{CJK_CLASS}]+")


def rouge_tokens(text: str) -> list[str]:
    """``rouge-score`` tokens for ASCII text; CJK characters and other letter runs are tokens too.

    >>> rouge_tokens("Hello, World-2024! 你好")
    ['hello', 'world', '2024', '你', '好']
    """
    return _TOKEN.findall(text.lower())


def rouge_l(new: list[str], ref: list[str]) -> float:
    """ROUGE-L F1 of two token lists, computed in the same float steps as ``rouge-score``'s
    ``score(target=new, prediction=ref)`` so that threshold decisions match it exactly.

    >>> rouge_l("the cat sat".split(), "the cat".split())
    0.8
    """
    if not new or not ref:
        return 0.0
    lcs = LCSseq.similarity(new, ref)
    if not lcs:
        return 0.0
    precision, recall = lcs / len(ref), lcs / len(new)
    return 2 * precision * recall / (precision + recall)


class _Postings:
    """Growable (ids, counts) arrays for one token."""

    __slots__ = ("ids", "counts", "size")

    def __init__(self) -> None:
        self.ids = np.empty(4, dtype=np.int32)
        self.counts = np.empty(4, dtype=np.int16)
        self.size = 0

    def append(self, doc: int, count: int) -> None:
        if self.size == len(self.ids):
            self.ids = np.concatenate([self.ids, np.empty_like(self.ids)])
            self.counts = np.concatenate([self.counts, np.empty_like(self.counts)])
        self.ids[self.size] = doc
        self.counts[self.size] = min(count, 32767)
        self.size += 1


class RougeIndex:
    """Texts added so far; ``max_score(text)`` is the best ROUGE-L F1 of ``text`` against them."""

    def __init__(self) -> None:
        self.tokens: list[list[str]] = []
        self.lengths = np.zeros(1024, dtype=np.int32)
        self.postings: dict[str, _Postings] = {}

    def __len__(self) -> int:
        return len(self.tokens)

    def add(self, text: str | list[str]) -> int:
        """Index a text (or its tokens); returns its id."""
        toks = rouge_tokens(text) if isinstance(text, str) else text
        doc = len(self.tokens)
        self.tokens.append(toks)
        if doc == len(self.lengths):
            self.lengths = np.concatenate([self.lengths, np.zeros_like(self.lengths)])
        self.lengths[doc] = len(toks)
        for tok, count in Counter(toks).items():
            posting = self.postings.get(tok)
            if posting is None:
                posting = self.postings[tok] = _Postings()
            posting.append(doc, count)
        return doc

    def _bounds(self, toks: list[str]) -> np.ndarray:
        """Upper bound of 2·LCS/(|a|+|b|) for every indexed text."""
        n = len(self.tokens)
        overlap = np.zeros(n, dtype=np.int32)
        for tok, count in Counter(toks).items():
            posting = self.postings.get(tok)
            if posting is not None:
                ids = posting.ids[: posting.size]
                overlap[ids] += np.minimum(posting.counts[: posting.size], count)
        # A hair of slack so a bound never undercuts the float-rounded exact score.
        return 2.0 * overlap / (len(toks) + self.lengths[:n]) + 1e-9

    def best(self, text: str | list[str], floor: float = 0.0) -> tuple[float, int | None]:
        """``(score, id)`` of the most similar indexed text among those that can reach ``floor``.

        Candidates are checked from the highest bound down and the search stops
        once no remaining bound can beat the best exact score found.
        """
        toks = rouge_tokens(text) if isinstance(text, str) else text
        if not toks or not self.tokens:
            return 0.0, None
        bounds = self._bounds(toks)
        cand = np.flatnonzero(bounds >= max(floor, 1e-12))
        if not len(cand):
            return 0.0, None
        cand = cand[np.argsort(-bounds[cand], kind="stable")]
        best, best_id = 0.0, None
        for doc in cand.tolist():
            if bounds[doc] <= best:
                break
            score = rouge_l(toks, self.tokens[doc])
            if score > best:
                best, best_id = score, doc
        return best, best_id

    def max_score(self, text: str | list[str], floor: float = 0.0) -> float:
        """Best ROUGE-L F1 against the index (exact when it is ≥ ``floor``; 0.0 when nothing reaches it)."""
        return self.best(text, floor)[0]

    def first_at_least(self, text: str | list[str], threshold: float) -> tuple[float, int | None]:
        """Some indexed text scoring ≥ ``threshold`` (stops at the first found), or ``(best_below, None)``."""
        toks = rouge_tokens(text) if isinstance(text, str) else text
        if not toks or not self.tokens:
            return 0.0, None
        bounds = self._bounds(toks)
        cand = np.flatnonzero(bounds >= threshold)
        cand = cand[np.argsort(-bounds[cand], kind="stable")]
        for doc in cand.tolist():
            score = rouge_l(toks, self.tokens[doc])
            if score >= threshold:
                return score, doc
        return 0.0, None
