"""Perplexity/IFD scoring speed: padded batches (the path before packing) vs packed rows, side by side.

Scores the first ``--n`` ShareGPT V3 conversations that read (``make venv`` unpacks the
dump; see ``tests/real_sharegpt.py``) with the embedded SmolLM2-135M, both ways in one
run and on the same records, and prints records/s, the speed-up and the largest
difference between the two paths' losses (float32 summation order: about 1e-4 relative).

    .venv/bin/python bench/bench_scoring.py            # 12 records
    .venv/bin/python bench/bench_scoring.py --n 48 --turns all
    .venv/bin/python bench/bench_scoring.py --n 12 --bf16     # also the packed path in bfloat16
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def sharegpt_records(n: int):
    from real_sharegpt import write_sharegpt_jsonl
    from sftlab.data.io import RecordStream

    with tempfile.TemporaryDirectory() as tmp:
        path = write_sharegpt_jsonl(2 * n + 50, Path(tmp) / "sharegpt.jsonl")
        stream = RecordStream(
            path, format="sharegpt", on_error="skip", repairs=("drop_leading_assistant", "keep_valid_prefix")
        )
        return list(stream)[:n]


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--turns", choices=["last", "all"], default="last")
    parser.add_argument("--bf16", action="store_true", help="also time the packed path in bfloat16")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from sftlab.curate.steps.perplexity import answer_losses
    from sftlab.models import load_model, load_tokenizer

    records = sharegpt_records(args.n)
    tokenizer, model = load_tokenizer(args.model), load_model(args.model, dtype="float32")
    kwargs = {"batch_size": args.batch_size, "max_length": args.max_length, "turns": args.turns}
    answer_losses(model, tokenizer, records[:2], packed=True, **kwargs)  # warm-up
    padded, padded_s = timed(lambda: answer_losses(model, tokenizer, records, packed=False, **kwargs))
    packed, packed_s = timed(lambda: answer_losses(model, tokenizer, records, packed=True, **kwargs))
    half = None
    if args.bf16:  # the same packed path in bfloat16 (score.dtype: bfloat16): faster on CPUs with bf16 units
        model = model.to(torch.bfloat16)
        half, half_s = timed(lambda: answer_losses(model, tokenizer, records, packed=True, **kwargs))
    pairs = [
        (a, b)
        for pa, pb in zip(padded, packed, strict=True)
        for a, b in zip(pa, pb, strict=True)
        if a is not None and b is not None
    ]
    diffs = [abs(a - b) for a, b in pairs]
    relative = max(abs(a - b) / abs(a) for a, b in pairs)
    print(
        f"model={args.model} records={len(records)} turns={args.turns} batch={args.batch_size} "
        f"max_length={args.max_length} threads={torch.get_num_threads()}"
    )
    print(f"padded (before): {len(records) / padded_s:.2f} records/s ({padded_s:.1f} s)")
    print(f"packed (now):    {len(records) / packed_s:.2f} records/s ({packed_s:.1f} s)")
    print(
        f"speed-up: {padded_s / packed_s:.2f}x; largest loss difference {max(diffs):.2e} ({relative:.1e} relative) over {len(diffs)} losses"
    )
    if half is not None:
        rel = [
            abs(a - b) / abs(a)
            for pa, pb in zip(packed, half, strict=True)
            for a, b in zip(pa, pb, strict=True)
            if a is not None and b is not None
        ]
        print(
            f"packed bfloat16: {len(records) / half_s:.2f} records/s ({half_s:.1f} s), "
            f"{padded_s / half_s:.2f}x the padded path; losses within {max(rel):.1%} of float32"
        )
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (both runs)")


if __name__ == "__main__":
    main()
