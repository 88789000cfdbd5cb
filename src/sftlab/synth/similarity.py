"""String agreement for the synth filters: ROUGE-L (the curation package's index) and token F1.

ROUGE-L comes from :mod:`sftlab.curate.steps.rouge`, so synth and curation score
and tokenise the same way.

>>> round(rouge_l("write a short poem about cats", "write a poem about dogs"), 3)
0.727
>>> round(token_f1("Paris is the capital", "the capital is Paris"), 2)
1.0
>>> index = RougeIndex(); _ = index.add("sort a list of numbers"); index.max_score("sort a list of numbers")
1.0
"""

from __future__ import annotations

from collections import Counter

from sftlab.curate.steps.rouge import RougeIndex, rouge_tokens
from sftlab.curate.steps.rouge import rouge_l as _rouge_l_tokens

__all__ = ["RougeIndex", "rouge_l", "token_f1"]


def rouge_l(reference: str, candidate: str) -> float:
    """ROUGE-L F1 (longest common word subsequence) of two texts, 0..1."""
    return _rouge_l_tokens(rouge_tokens(reference), rouge_tokens(candidate))


def token_f1(reference: str, candidate: str) -> float:
    """Bag-of-words F1 (SQuAD style), 0..1."""
    ref, cand = Counter(rouge_tokens(reference)), Counter(rouge_tokens(candidate))
    common = sum((ref & cand).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(cand.values()), common / sum(ref.values())
    return 2 * precision * recall / (precision + recall)
