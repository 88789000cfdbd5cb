"""MinHash-LSH candidate checks: hashing candidates in batches (``ExactJaccard.prefetch``) decides exactly as
checking them one text at a time did, on real text (MMLU questions, CJK and mixed-script records)."""

from __future__ import annotations

import random

from curate_helpers import mmlu_rows, planted_dataset
from sftlab.curate.steps.minhash import MinHasher, exact_jaccard, near_duplicate_clusters


def _texts_with_near_duplicates(seed: int = 0) -> list[str]:
    """Real MMLU questions with options, English/Chinese conversations, and edited copies of some of them."""
    rng = random.Random(seed)
    texts = [
        " ".join([r["question"], r["answer_a"], r["answer_b"], r["answer_c"]]) for r in mmlu_rows(300, seed)
    ]
    texts += [r.instruction + " " + r.response for r in planted_dataset(seed)]
    for src in rng.sample(range(len(texts)), 120):
        toks = texts[src].split()
        for _ in range(rng.randint(1, 4)):
            toks[rng.randrange(len(toks))] = rng.choice(toks)
        texts.append(" ".join(toks) + rng.choice(["", " Café!", " 你好"]))
    return texts


def _one_at_a_time(hasher: MinHasher, texts: list[str]):
    """The unbatched check: one shingle set per text, hashed when a pair first needs it."""
    cache: dict[int, frozenset[int]] = {}

    def f(i: int, j: int) -> float:
        a = cache.setdefault(i, hasher.shingle_set(texts[i]))
        b = cache.setdefault(j, hasher.shingle_set(texts[j]))
        return len(a & b) / len(a | b) if a | b else 0.0

    return f


def test_prefetched_sets_equal_single_text_sets():
    texts = _texts_with_near_duplicates()
    for hasher in (MinHasher(num_perm=64, ngram=3), MinHasher(num_perm=64, ngram=5, shingle="char")):
        exact = exact_jaccard(hasher, texts)
        exact.prefetch(range(len(texts)), batch=97)  # batches cut across records of every kind
        assert len(exact.cache) == len(texts)
        assert all(exact.cache[i] == hasher.shingle_set(t) for i, t in enumerate(texts))


def test_batched_candidate_check_decides_as_the_unbatched_one():
    texts = _texts_with_near_duplicates()
    hasher = MinHasher(num_perm=128, ngram=3)
    sig = hasher.signatures(texts)
    for threshold in (0.5, 0.7, 0.8):
        batched = near_duplicate_clusters(sig, threshold, exact=exact_jaccard(hasher, texts))
        single = near_duplicate_clusters(sig, threshold, exact=_one_at_a_time(hasher, texts))
        assert batched == single
        assert len(batched) >= 50  # the edited copies were found: the comparison is not vacuous


def test_texts_given_by_a_function_are_read_once_each():
    texts = _texts_with_near_duplicates()
    reads: list[int] = []

    def text_of(i: int) -> str:
        reads.append(i)
        return texts[i]

    hasher = MinHasher(num_perm=128, ngram=3)
    exact = exact_jaccard(hasher, text_of)
    clusters = near_duplicate_clusters(hasher.signatures(texts), 0.7, exact=exact)
    assert clusters == near_duplicate_clusters(
        hasher.signatures(texts), 0.7, exact=exact_jaccard(hasher, texts)
    )
    assert len(reads) == len(set(reads)) > 0
