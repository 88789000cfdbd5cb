"""Server latency of short requests next to a long one: static batching (before) vs continuous batching (after).

    .venv/bin/python bench/bench_serve_latency.py [--model embedded|tiny] [--rounds 3] [--repeat 2]
        [--long 300] [--before REF] [--threads 1] [--json out.json]

Each round sends one long completion (``--long`` tokens) and, right after it, seven short ones
(2 tokens) to ``sftlab serve`` on loopback, through the official ``openai`` client, and times each
request from send to answer. The same rounds run against two versions of the server, each in a
process of its own, in the order before, after, after, before (``--repeat 2``) so that a machine
load that drifts during the run weighs on both alike:

- ``before``: the code at ``--before`` (default: the commit before continuous batching), checked
  out into a temporary ``git worktree`` that is removed afterwards;
- ``after``: this working tree.

Prints p50/p95 of the short requests' latency, the long request's latency and each round's
wall time, for both, and the ratios. Greedy decoding (temperature 0), ``--max-batch 8``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHORTS = 7
LONG_PROMPT = "Chapter one. The lighthouse keeper woke before dawn, as he had every day for forty years, and"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low, high = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _round(client, index: int, long_tokens: int) -> dict:
    """One long request, then seven short ones without waiting; latency of each from its own send."""
    times: dict[str, float] = {}
    tokens: dict[str, int] = {}

    def call(key: str, prompt: str, n: int) -> None:
        start = time.perf_counter()
        reply = client.completions.create(model="x", prompt=prompt, max_tokens=n, temperature=0)
        times[key] = time.perf_counter() - start
        tokens[key] = reply.usage.completion_tokens

    start = time.perf_counter()
    jobs = [("long", f"{LONG_PROMPT} (round {index})", long_tokens)]
    jobs += [(f"short{i}", f"Question {index}.{i}: what is {i} plus {index}?", 2) for i in range(SHORTS)]
    threads = []
    for key, prompt, n in jobs:
        threads.append(threading.Thread(target=call, args=(key, prompt, n)))
        threads[-1].start()
    for thread in threads:
        thread.join()
    return {
        "wall_s": time.perf_counter() - start,
        "long_s": times["long"],
        "long_tokens": tokens["long"],
        "short_s": [times[f"short{i}"] for i in range(SHORTS)],
    }


def child(args: argparse.Namespace) -> None:
    """Serve ``--model`` with the sftlab found on PYTHONPATH and print the rounds as JSON."""
    import openai
    import torch

    torch.set_num_threads(args.threads)
    from sftlab.serve import create_app
    from sftlab.serve.testing import running_server

    if args.model == "tiny":
        from sftlab.testing import embedded_tokenizer, save_tiny_model

        model_ref = str(save_tiny_model(tempfile.mkdtemp(prefix="bench-serve-"), embedded_tokenizer()))
    else:
        model_ref = "smollm2-135m-instruct"
    app = create_app(model_ref, served_name="x", max_batch=8, max_tokens_limit=max(args.long, 16))
    with running_server(app) as url:
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=3600)
        _round(client, -1, 8)  # warm-up: first calls allocate and compile kernels
        rounds = [_round(client, i, args.long) for i in range(args.rounds)]
    print(json.dumps({"rounds": rounds, "server": sys.modules["sftlab.serve"].__file__}))


def _before_commit(ref: str | None) -> str:
    """``ref``, or the parent of the commit that added the continuous-batching module."""
    if ref:
        return ref
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", "src/sftlab/serve/batch.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not added:
        raise SystemExit("continuous batching is not committed yet; pass --before REF")
    return subprocess.run(
        ["git", "rev-parse", "--short", f"{added[-1]}^"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def _run_version(src: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", "--model", args.model, "--rounds", str(args.rounds)]
    cmd += ["--long", str(args.long), "--threads", str(args.threads)]
    env = {**os.environ, "PYTHONPATH": str(src), "TOKENIZERS_PARALLELISM": "false", "SFTLAB_PROGRESS": "0"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"the server run for {src} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summary(result: dict) -> dict:
    shorts = [s for r in result["rounds"] for s in r["short_s"]]
    return {
        "short_p50_ms": 1000 * _percentile(shorts, 0.5),
        "short_p95_ms": 1000 * _percentile(shorts, 0.95),
        "long_ms": 1000 * statistics.median(r["long_s"] for r in result["rounds"]),
        "round_ms": 1000 * statistics.median(r["wall_s"] for r in result["rounds"]),
        "long_tokens": statistics.median(r["long_tokens"] for r in result["rounds"]),
        "shorts": len(shorts),
        "rounds": len(result["rounds"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["embedded", "tiny"], default="embedded")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per server process")
    ap.add_argument("--repeat", type=int, choices=[1, 2], default=2, help="2: processes in the order ABBA")
    ap.add_argument("--long", type=int, default=300, help="max_tokens of the long request")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the server process")
    ap.add_argument("--before", help="git ref of the 'before' server (default: before continuous batching)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    ref = _before_commit(args.before)
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="sftlab-before-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), ref], cwd=ROOT, check=True)
        try:
            # before, after, after, before: a load that drifts during the run weighs on both alike
            for label in ["before", "after", "after", "before"][: 2 * args.repeat]:
                src = tree / "src" if label == "before" else ROOT / "src"
                runs[label] += _run_version(src, args)["rounds"]
                print(f"{label}: {len(runs[label])} rounds done", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)
    before, after = summary({"rounds": runs["before"]}), summary({"rounds": runs["after"]})

    print(
        f"\nmodel {args.model}, {before['rounds']} rounds each of 1 long ({args.long} tokens) + {SHORTS} short (2 tokens); "
        f"torch threads {args.threads}; {os.cpu_count()} CPUs ({platform.processor() or platform.machine()})"
    )
    print(f"before = {ref}; after = working tree\n")
    print(f"{'':24}{'before':>12}{'after':>12}{'before/after':>14}")
    for key, label in [
        ("short_p50_ms", "short p50 (ms)"),
        ("short_p95_ms", "short p95 (ms)"),
        ("long_ms", "long, median (ms)"),
        ("round_ms", "round wall, median (ms)"),
        ("long_tokens", "long tokens, median"),
    ]:
        ratio = before[key] / after[key] if after[key] else float("nan")
        print(f"{label:24}{before[key]:12.0f}{after[key]:12.0f}{ratio:13.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"before": before, "after": after, "ref": ref}, indent=2))


if __name__ == "__main__":
    main()
