"""Tokenization throughput: synthetic multi-turn conversations, 1 and 2 processes, cached re-run.

    .venv/bin/python bench/bench_tokenize.py [--n 100000] [--procs 1 2]

Uses the embedded SmolLM2 tokenizer and its own chat template (the SmolLM default
system prompt included), so the per-record cost is the real one: one template
rendering per turn boundary plus one batched tokenizer call per record.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("SFTLAB_PROGRESS", "0")

WORDS = [
    "the",
    "a",
    "model",
    "data",
    "train",
    "token",
    "answer",
    "question",
    "river",
    "mountain",
    "blue",
    "green",
    "quick",
    "lazy",
    "fox",
    "dog",
    "seven",
]


def synthetic(n: int, seed: int = 0):
    from sftlab.data.record import Conversation, Meta, Turn

    rng = random.Random(seed)

    def text(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + "."

    out = []
    for i in range(n):
        turns = []
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            turns += [Turn("user", text(rng.randint(5, 40))), Turn("assistant", text(rng.randint(10, 200)))]
        out.append(
            Conversation(turns=turns, system=text(8) if rng.random() < 0.3 else None, meta=Meta(id=f"r{i}"))
        )
    return out


def main() -> None:
    import torch

    torch.set_num_threads(1)
    from sftlab.recipe.sections.render import RenderSection
    from sftlab.render import tokenize_records
    from sftlab.testing import embedded_tokenizer

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    tokenizer = embedded_tokenizer()
    records = synthetic(args.n)
    cfg = RenderSection()
    for p in args.procs:
        t0 = time.perf_counter()
        data = tokenize_records(records, tokenizer, cfg, num_proc=p)
        took = time.perf_counter() - t0
        print(
            f"num_proc={p}: {args.n:,} records in {took:.1f}s = {args.n / took:,.0f} records/s "
            f"({data.stats['tokens'] / took:,.0f} tokens/s, trained share {data.stats['trained_token_share']:.1%})"
        )
    cache = tempfile.mkdtemp(prefix="sftlab-bench-")
    try:
        t0 = time.perf_counter()
        tokenize_records(records, tokenizer, cfg, num_proc=max(args.procs), cache_dir=cache)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = tokenize_records(records, tokenizer, cfg, cache_dir=cache)
        second = time.perf_counter() - t0
        assert again.from_cache
        print(f"cache: first run {first:.1f}s, cached re-run {second:.1f}s (fingerprint + load)")
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
