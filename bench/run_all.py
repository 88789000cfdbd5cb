"""Run every benchmark in bench/ with its default (short) settings, one after another.

    make bench            # or: python bench/run_all.py [name ...]

Each script prints its own figures and ratios; see BENCHMARKS.md for the latest ones.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
ORDER = [
    "bench_convert",
    "bench_packing",
    "bench_tokenize",
    "bench_minhash",
    "bench_rouge",
    "bench_mmlu",
    "bench_ifd",
    "bench_scoring",
    "bench_selection",
    "bench_curate_1m",
    "bench_train",
]


def main(names: list[str]) -> int:
    failed = []
    for name in names or ORDER:
        script = HERE / f"{name}.py"
        print(f"\n=== {name} ===", flush=True)
        if subprocess.call([sys.executable, str(script)]) != 0:
            failed.append(name)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
