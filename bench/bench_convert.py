"""Conversion throughput: a generated ShareGPT JSONL converted to OpenAI messages JSONL.

    python bench/bench_convert.py               # 200 MB
    python bench/bench_convert.py --size-mb 1000

Reports MB/s of input and the peak resident memory (``ru_maxrss``); the target
is >= 50 MB/s on one core with a peak below 500 MB (memory must not grow with
the file: readers and writers stream).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import orjson

WORDS = [
    "the",
    "model",
    "learns",
    "to",
    "answer",
    "questions",
    "about",
    "data",
    "training",
    "loss",
    "gradient",
    "token",
    "batch",
    "请",
    "用",
    "一句话",
    "介绍",
    "长城",
    "数据",
    "模型",
    "训练",
    "because",
    "therefore",
    "however",
    "example",
    "result",
    "value",
]


def _text(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(lo, hi)))


def generate(path: Path, size_mb: float, seed: int = 0) -> int:
    """Write ShareGPT records (1-4 exchanges, some with a system turn) until ``size_mb``; return the count."""
    rng = random.Random(seed)
    target = int(size_mb * 1e6)
    n = written = 0
    with open(path, "wb") as fh:
        while written < target:
            conv = [{"from": "system", "value": _text(rng, 5, 20)}] if rng.random() < 0.3 else []
            for _ in range(rng.randint(1, 4)):
                conv.append({"from": "human", "value": _text(rng, 10, 80)})
                conv.append({"from": "gpt", "value": _text(rng, 20, 200)})
            line = orjson.dumps({"id": f"r{n}", "conversations": conv, "lang": "mixed"}) + b"\n"
            fh.write(line)
            written += len(line)
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mb", type=float, default=200)
    ap.add_argument("--workdir", default=None, help="Where to put the files (default: a temp dir).")
    args = ap.parse_args(argv)
    os.environ.setdefault("SFTLAB_PROGRESS", "0")
    from sftlab.data.io import read_records, write_records

    work = Path(args.workdir or tempfile.mkdtemp(prefix="sftlab-bench-"))
    src, dst = work / "bench.sharegpt.jsonl", work / "bench.messages.jsonl"
    n = generate(src, args.size_mb)
    size = src.stat().st_size / 1e6
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    stream = read_records(src)
    wstats = write_records(stream, dst, format="messages")
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0  # on a shared machine wall time includes waiting for a core
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert stream.stats.kept == wstats.written == n, (stream.stats, wstats)
    print(f"records {n}, input {size:.1f} MB, output {dst.stat().st_size / 1e6:.1f} MB")
    print(
        f"convert sharegpt -> messages: {seconds:.2f} s, {size / seconds:.1f} MB/s, {n / seconds:,.0f} records/s"
    )
    print(f"cpu time {cpu:.2f} s: {size / cpu:.1f} MB per CPU-second (one core, single thread)")
    print(f"peak RSS {peak:.0f} MB (before conversion {rss_before:.0f} MB)")
    if not args.workdir:
        src.unlink()
        dst.unlink()
        work.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
