"""String agreement for the synth filters: ROUGE-L and token F1 over lowercased words.

>>> round(rouge_l("write a short poem about cats", "write a poem about dogs"), 3)
0.727
>>> round(token_f1("Paris is the capital", "the capital is Paris"), 2)
1.0
>>> index = RougeIndex(); index.add("sort a list of numbers"); index.max_score("sort a list of numbers")
1.0
"""

from __future__ import annotations

import re
from collections import Counter

from rapidfuzz.distance import LCSseq

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _rouge_tokens(a: list[str], b: list[str]) -> float:
    if not a or not b:
        return 0.0
    lcs = LCSseq.similarity(a, b)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(b), lcs / len(a)
    return 2 * precision * recall / (precision + recall)


def rouge_l(reference: str, candidate: str) -> float:
    """ROUGE-L F1 (longest common word subsequence), 0..1."""
    return _rouge_tokens(words(reference), words(candidate))


def token_f1(reference: str, candidate: str) -> float:
    """Bag-of-words F1 (SQuAD style), 0..1."""
    ref, cand = Counter(words(reference)), Counter(words(candidate))
    common = sum((ref & cand).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(cand.values()), common / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


class RougeIndex:
    """A growing pool of texts; ``max_score`` is the highest ROUGE-L of a text against the pool."""

    def __init__(self) -> None:
        self._pool: list[list[str]] = []

    def add(self, text: str) -> None:
        self._pool.append(words(text))

    def __len__(self) -> int:
        return len(self._pool)

    def max_score(self, text: str) -> float:
        cand = words(text)
        best = 0.0
        for ref in self._pool:
            # LCS ≤ min length bounds the score; skip pairs that cannot beat the best so far.
            short = min(len(ref), len(cand))
            if short and 2 * short / (len(ref) + len(cand)) <= best:
                continue
            best = max(best, _rouge_tokens(ref, cand))
            if best >= 1.0:
                break
        return best
