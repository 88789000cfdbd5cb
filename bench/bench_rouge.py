"""ROUGE-L instruction dedup (Self-Instruct rule: drop when ROUGE-L F ≥ 0.7 with any kept instruction).

1. Decisions: our ``RougeDedup`` vs the ``rouge-score`` reference loop (all pairs) on a sample
   (default 2,000 instructions) — keep/drop must be identical.
2. Speed at 10k instructions: ours is timed; the reference's all-pairs time is its measured
   per-pair cost × the number of pairs its loop scores (exact count, from the identical decisions).

Instructions: real MMLU question openings plus edited copies (words dropped, swapped, added),
so that many pairs sit near the threshold.

    .venv/bin/python bench/bench_rouge.py [--check 2000] [--n 10000]

``rouge-score`` is a benchmark/test reference only: ``pip install rouge-score``.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from sftlab.curate.steps.base import StepStats
from sftlab.curate.steps.decontaminate import mmlu_path
from sftlab.curate.steps.registry import build_step
from sftlab.data.record import Conversation, Meta, Turn

THRESHOLD = 0.7


def instructions(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    rows = [json.loads(line) for line in mmlu_path().read_text(encoding="utf-8").splitlines()]
    base = list(
        dict.fromkeys(" ".join(r["question"].split()[:16]) for r in rows if r["question"] != "question")
    )
    rng.shuffle(base)
    vocab = [w for t in base[:300] for w in t.split()]
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < 0.4:
            toks = rng.choice(out).split()
            for _ in range(rng.randint(1, 5)):
                i = rng.randrange(len(toks))
                op = rng.random()
                if op < 0.4:
                    toks[i] = rng.choice(vocab)
                elif op < 0.7:
                    toks.insert(i, rng.choice(vocab))
                elif len(toks) > 4:
                    del toks[i]
            out.append(" ".join(toks))
        else:
            out.append(base[len(out) % len(base)])
    return out


def ours(texts: list[str]) -> tuple[float, list[bool]]:
    recs = [
        Conversation([Turn("user", t), Turn("assistant", "-")], meta=Meta(id=str(i)))
        for i, t in enumerate(texts)
    ]
    step = build_step({"type": "rouge_dedup", "threshold": THRESHOLD})
    start = time.perf_counter()
    decisions = list(step.run(recs, StepStats("rouge")))
    return time.perf_counter() - start, [d.kept for d in decisions]


def reference(texts: list[str]) -> tuple[float, list[bool], int]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    kept: list[str] = []
    keep: list[bool] = []
    pairs = 0
    start = time.perf_counter()
    for t in texts:
        best = 0.0
        for k in kept:
            best = max(best, scorer.score(t, k)["rougeL"].fmeasure)
        pairs += len(kept)
        keep.append(best < THRESHOLD)
        if keep[-1]:
            kept.append(t)
    return time.perf_counter() - start, keep, pairs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", type=int, default=2000)
    ap.add_argument("--n", type=int, default=10000)
    args = ap.parse_args()

    sample = instructions(args.check)
    t_ours, keep_ours = ours(sample)
    t_ref, keep_ref, pairs = reference(sample)
    same = sum(a == b for a, b in zip(keep_ours, keep_ref, strict=True))
    print(
        f"decisions on {len(sample):,} instructions: {same:,}/{len(sample):,} identical "
        f"({sum(keep_ref):,} kept by the reference); ours {t_ours:.2f}s, reference {t_ref:.1f}s "
        f"({pairs:,} pairs, {t_ref / max(pairs, 1) * 1e6:.1f} µs/pair)"
    )

    big = instructions(args.n, seed=1)
    t_big, keep_big = ours(big)
    # The reference scores, for each instruction, every instruction kept before it.
    ref_pairs, kept = 0, 0
    for k in keep_big:
        ref_pairs += kept
        kept += k
    est = ref_pairs * (t_ref / max(pairs, 1))
    print(
        f"{len(big):,} instructions: ours {t_big:.2f}s ({len(big) / t_big:,.0f}/s); reference all-pairs "
        f"≈ {est:,.0f}s ({ref_pairs:,} pairs at the measured µs/pair) → {est / t_big:,.0f}x faster"
    )


if __name__ == "__main__":
    main()
