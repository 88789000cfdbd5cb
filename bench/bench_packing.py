"""Packing efficiency on an Alpaca-like length distribution (lognormal), best-fit decreasing.

    .venv/bin/python bench/bench_packing.py [--n 50000] [--max-length 2048]

Reports the share of non-padding tokens when the whole dataset is packed at once
(what a trainer should do: pack the epoch, then batch the rows) and when each
batch of samples is packed on its own (what PackedCollator does with a plain sampler).
"""

from __future__ import annotations

import argparse
import random
import time

from sftlab.render.pack import pack_samples, padding_share


def lengths(n: int, max_length: int, seed: int = 0) -> list[int]:
    # Alpaca-like: median ~180 tokens, long right tail; longer ones are truncated by render
    rng = random.Random(seed)
    return [max(8, min(max_length, int(rng.lognormvariate(5.2, 0.75)))) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--max-length", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=64, help="samples per batch for per-batch packing")
    args = ap.parse_args()
    lens = lengths(args.n, args.max_length)
    t0 = time.perf_counter()
    bins = pack_samples(lens, args.max_length)
    took = time.perf_counter() - t0
    eff = 1 - padding_share(lens, bins, args.max_length)
    used = used_total = 0
    for i in range(0, len(lens), args.batch):
        chunk = lens[i : i + args.batch]
        rows = pack_samples(chunk, args.max_length)
        widest = max(sum(chunk[j] for j in r) for r in rows)
        used += sum(chunk)
        used_total += len(rows) * widest
    print(f"samples {args.n:,}  mean length {sum(lens) / len(lens):.0f}  max_length {args.max_length}")
    print(f"global BFD: {len(bins):,} rows, non-padding {eff:.2%}, packed in {took:.2f}s")
    print(
        f"per-batch BFD ({args.batch} samples/batch, padded to widest row): non-padding {used / used_total:.2%}"
    )
    padded = sum(lens) / sum(
        max(lens[i : i + args.batch]) * len(lens[i : i + args.batch]) for i in range(0, len(lens), args.batch)
    )
    print(f"no packing (pad to longest in batch): non-padding {padded:.2%}")


if __name__ == "__main__":
    main()
