"""Local vs Ray executor: the same N records (default 1M) through the same steps on this machine.

Records and steps are those of ``bench_curate_1m.py`` (normalize, heuristic filters,
exact dedup, MinHash dedup). Each executor runs in its own child process so that
peak memory is its own. Printed per executor: wall time, records/s and records/s
per core; for Ray, the peak RSS of the driver and of the busiest Ray worker (sampled
every 0.2 s, private memory: the object-store pages a worker maps are shared); then the
overhead ratio (Ray wall / local wall) and whether both kept and rejected the same
counts per reason.

    .venv/bin/python bench/bench_curate_ray.py [--n 1000000] [--cpus N] [--block 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("SFTLAB_PROGRESS", "0")
sys.path.insert(0, str(Path(__file__).parent))


def _worker_peaks(stop: threading.Event, peaks: dict[int, int], cpu: dict[int, float]) -> None:
    """Peak private memory (USS: not the object-store pages a worker maps) and CPU seconds of every Ray
    worker process (``ray::`` in its title) until ``stop``."""
    import psutil

    while not stop.wait(0.2):
        for proc in psutil.process_iter(["cmdline"]):
            try:
                cmd = " ".join(proc.info["cmdline"] or [])
                if cmd.startswith("ray::"):
                    peaks[proc.pid] = max(peaks.get(proc.pid, 0), proc.memory_full_info().uss)
                    times = proc.cpu_times()
                    cpu[proc.pid] = times.user + times.system
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue


def run_one(executor: str, n: int, cpus: int, block: int, out: str) -> dict:
    """Curate in this process; returns the figures as a dict."""
    from bench_curate_1m import STEPS, records

    from sftlab.curate.executors.local import LocalExecutor
    from sftlab.curate.pipeline import curate
    from sftlab.curate.steps.registry import build_steps

    shutil.rmtree(out, ignore_errors=True)
    peaks: dict[int, int] = {}
    cpu: dict[int, float] = {}
    stop = threading.Event()
    setup = 0.0
    if executor == "ray":
        import logging

        import ray

        from sftlab.curate.executors.ray_executor import RayExecutor

        start = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
        setup = time.perf_counter() - start
        runner = RayExecutor(block_records=block)
        threading.Thread(target=_worker_peaks, args=(stop, peaks, cpu), daemon=True).start()
    else:
        runner = LocalExecutor()
    start = time.perf_counter()
    own = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = dict(cpu)
    result = curate(records(n), build_steps(STEPS), out, executor=runner, report=False)
    wall = time.perf_counter() - start
    stop.set()
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "executor": executor,
        "wall": wall,
        "cluster_start": setup,
        "driver_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_mib": max(peaks.values(), default=0) / 2**20,
        "workers": len(peaks),
        "kept": result.kept,
        "rejected": dict(result.rejected),
        "ran_on": {s.step: s.details.get("ran_on") for s in result.steps},
        "driver_cpu_s": after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime,
        "worker_cpu_s": sum(cpu.values()) - sum(cpu_before.values()),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="CPUs of the local Ray cluster")
    ap.add_argument("--block", type=int, default=10_000, help="records per Ray block")
    ap.add_argument("--out", default="/tmp/sftlab-curate-ray-bench")
    ap.add_argument("--only", choices=("local", "ray"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.only:
        figures = run_one(args.only, args.n, args.cpus, args.block, f"{args.out}/{args.only}")
        print("RESULT " + json.dumps(figures))
        return
    rows = {}
    for executor in ("local", "ray"):
        cmd = [sys.executable, __file__, "--only", executor, "--n", str(args.n), "--cpus", str(args.cpus)]
        cmd += ["--block", str(args.block), "--out", args.out]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows[executor] = json.loads(next(x for x in out.splitlines() if x.startswith("RESULT "))[7:])
    load = os.getloadavg()[0]
    print(f"{args.n:,} records, {args.cpus} CPUs, Ray blocks of {args.block:,} records, load {load:.1f}")
    for executor, r in rows.items():
        cores = 1 if executor == "local" else args.cpus
        line = (
            f"  {executor:<5} {r['wall']:7.1f}s  {args.n / r['wall']:9,.0f} records/s"
            f"  ({args.n / r['wall'] / cores:,.0f} per core)  driver peak {r['driver_peak_mib']:,.0f} MiB"
        )
        if executor == "ray":
            line += (
                f"  busiest of {r['workers']} workers {r['worker_peak_mib']:,.0f} MiB private"
                f"  (+ {r['cluster_start']:.1f}s to start the cluster)"
            )
        print(line)
    local, on_ray = rows["local"], rows["ray"]
    print(
        f"  CPU seconds: local {local['driver_cpu_s']:.1f} ({args.n / local['driver_cpu_s']:,.0f} records per "
        f"CPU-second); Ray driver {on_ray['driver_cpu_s']:.1f} ({args.n / on_ray['driver_cpu_s']:,.0f}/s), "
        f"Ray workers {on_ray['worker_cpu_s']:.1f} ({args.n / max(on_ray['worker_cpu_s'], 1e-9):,.0f}/s)"
    )
    print(f"  overhead ratio (ray wall / local wall): {on_ray['wall'] / local['wall']:.2f}")
    same = local["kept"] == on_ray["kept"] and local["rejected"] == on_ray["rejected"]
    print(f"  same decisions: {same}  (kept {on_ray['kept']:,}, rejected {on_ray['rejected']})")
    print("  ran on: " + ", ".join(f"{k} {v}" for k, v in on_ray["ran_on"].items()))


if __name__ == "__main__":
    main()
