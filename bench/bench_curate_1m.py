"""Curate N short records (default 1M): normalize + heuristic filters + exact dedup + MinHash dedup.

Records are generated on the fly (short prompt + answer, about 3 % exact and 3 % near
duplicates, a sprinkle of boilerplate and placeholders) and streamed into the runner,
which writes kept/rejects/report like ``sftlab data curate``. Reported: wall time,
records/s, peak RSS, and the accounting.

    .venv/bin/python bench/bench_curate_1m.py [--n 1000000] [--out /tmp/curate-1m]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import time
from collections.abc import Iterator

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("SFTLAB_PROGRESS", "0")

from sftlab.curate.pipeline import curate  # noqa: E402
from sftlab.curate.steps.registry import build_steps  # noqa: E402
from sftlab.data.record import Conversation, Meta, Turn  # noqa: E402

WORDS = [
    "time",
    "year",
    "people",
    "way",
    "day",
    "man",
    "thing",
    "woman",
    "life",
    "child",
    "world",
    "school",
    "state",
    "family",
    "student",
    "group",
    "country",
    "problem",
    "hand",
    "part",
    "place",
    "case",
    "week",
    "company",
    "system",
    "program",
    "question",
    "work",
    "government",
    "number",
    "night",
    "point",
    "home",
    "water",
    "room",
    "mother",
    "area",
    "money",
    "story",
    "fact",
    "month",
    "lot",
    "right",
    "study",
    "book",
    "eye",
    "job",
    "word",
    "business",
    "issue",
    "side",
    "kind",
    "head",
    "house",
    "service",
    "friend",
    "father",
    "power",
    "hour",
    "game",
    "line",
    "end",
    "member",
    "law",
    "car",
    "city",
    "community",
    "name",
    "president",
    "team",
    "minute",
    "idea",
    "kid",
    "body",
    "information",
    "back",
    "parent",
    "face",
    "others",
    "level",
    "office",
    "door",
    "health",
    "person",
    "art",
    "war",
    "history",
    "party",
    "result",
    "change",
    "morning",
    "reason",
    "research",
    "girl",
    "guy",
    "moment",
    "air",
    "teacher",
    "force",
    "education",
    "explain",
    "describe",
    "compare",
    "write",
    "list",
    "give",
    "build",
    "plan",
    "improve",
    "measure",
    "protect",
    "choose",
    "create",
]

STEPS = [
    {"type": "normalize"},
    {"type": "length", "min": 3, "max": 400},
    {"type": "garbled"},
    {"type": "language"},
    {"type": "boilerplate"},
    {"type": "placeholder"},
    {"type": "repetition"},
    {"type": "exact_dedup"},
    {"type": "minhash_dedup", "threshold": 0.7},
]


def records(n: int, seed: int = 0) -> Iterator[Conversation]:
    rng = random.Random(seed)
    recent: list[tuple[str, str]] = []
    for i in range(n):
        r = rng.random()
        if recent and r < 0.03:
            prompt, answer = rng.choice(recent)  # exact duplicate
        elif recent and r < 0.06:
            prompt, answer = rng.choice(recent)
            toks = answer.split()
            toks[rng.randrange(len(toks))] = rng.choice(WORDS)  # near duplicate
            answer = " ".join(toks)
        else:
            prompt = " ".join(rng.choices(WORDS, k=rng.randint(6, 14))).capitalize() + "?"
            answer = " ".join(rng.choices(WORDS, k=rng.randint(18, 40))).capitalize() + "."
            if r > 0.995:
                answer = "As an AI language model, " + answer
            elif r > 0.99:
                answer = "Dear [NAME], " + answer
            recent.append((prompt, answer))
            if len(recent) > 1000:
                recent.pop(0)
        yield Conversation(
            [Turn("user", prompt), Turn("assistant", answer)], meta=Meta(id=f"r{i}", task="bench")
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--out", default="/tmp/sftlab-curate-bench")
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    start = time.perf_counter()
    result = curate(records(args.n), build_steps(STEPS), args.out)
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{args.n:,} records: {wall:.0f}s wall ({args.n / wall:,.0f} records/s), peak RSS {peak_mb:,.0f} MiB"
    )
    print(
        f"in {result.records_in:,} = kept {result.kept:,} + rejected {result.rejected_total:,} "
        f"{dict(result.rejected.most_common())}"
    )
    for s in result.steps:
        print(f"  {s.step:<16} {s.seconds:8.1f}s  in {s.records_in:>9,}  out {s.kept:>9,}")


if __name__ == "__main__":
    main()
