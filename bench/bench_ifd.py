"""Throughput of perplexity/IFD scoring and MiniLM embedding on this machine.

Scores ``--n`` synthetic single-turn records (prompt ≈ 20 words, answer ≈ 60
words) with the embedded model (or ``--model``): two sequences per record
(with and without the instruction), batched. Prints records per second.

    .venv/bin/python bench/bench_ifd.py --n 32 --batch-size 8 --threads 1
"""

from __future__ import annotations

import argparse
import random
import time


def synthetic_records(n: int, seed: int = 0):
    from sftlab.data.record import Conversation, Turn

    rng = random.Random(seed)
    vocab = [
        "the",
        "a",
        "model",
        "data",
        "answer",
        "question",
        "river",
        "light",
        "stone",
        "music",
        "number",
        "garden",
        "city",
        "system",
        "code",
    ]
    records = []
    for _ in range(n):
        prompt = " ".join(rng.choice(vocab) for _ in range(20)) + "?"
        answer = " ".join(rng.choice(vocab) for _ in range(60)) + "."
        records.append(Conversation(turns=[Turn("user", prompt), Turn("assistant", answer)]))
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from sftlab.curate.embeddings import load_embedder
    from sftlab.curate.steps.perplexity import answer_losses
    from sftlab.models import load_model, load_tokenizer

    records = synthetic_records(args.n)
    tokenizer, model = load_tokenizer(args.model), load_model(args.model)
    answer_losses(model, tokenizer, records[:2], batch_size=2)  # warm-up
    start = time.perf_counter()
    answer_losses(model, tokenizer, records, batch_size=args.batch_size)
    ifd_s = time.perf_counter() - start

    embedder = load_embedder("minilm")
    texts = [r.all_text() for r in records]
    embedder.encode(texts[:2])
    start = time.perf_counter()
    embedder.encode(texts)
    emb_s = time.perf_counter() - start

    device = next(model.parameters()).device
    print(f"device={device} threads={args.threads} n={args.n} batch={args.batch_size}")
    print(f"perplexity+IFD: {args.n / ifd_s:.1f} records/s ({ifd_s:.2f} s)")
    print(f"MiniLM embedding: {args.n / emb_s:.1f} texts/s ({emb_s:.2f} s)")


if __name__ == "__main__":
    main()
