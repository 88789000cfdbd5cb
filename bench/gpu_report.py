"""bench/gpu_bench.py's estimate rows and its two outputs: ``gpu_bench.json`` and the Markdown for BENCHMARKS.md.

The Markdown says where every figure comes from: a dry run is labelled as a CPU run of a tiny
model, and a figure that was not measured is printed as ``not measured``, never estimated.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ESTIMATES = (
    {"method": "full", "optimizer": "adamw_torch_fused", "batch": 1, "grad_checkpointing": False},
    {"method": "lora", "optimizer": "adamw_torch_fused", "batch": 4, "grad_checkpointing": True},
    {"method": "qlora", "optimizer": "paged_adamw_8bit", "batch": 4, "grad_checkpointing": True},
)
"""The three configurations whose estimate is set against ``estimate --measure``."""
GIB = 1024**3


def estimate_rows(model_dir: Path, seq_len: int, *, measure: bool) -> list[dict]:
    """``sftlab estimate --json`` (``--measure`` on a GPU) for each configuration, each in its own process."""
    rows = []
    for cfg in ESTIMATES:
        cmd = [sys.executable, "-m", "sftlab.cli.main", "estimate", "--model", str(model_dir), "--method",
               cfg["method"], "--seq-len", str(seq_len), "--batch", str(cfg["batch"]), "--optimizer",
               cfg["optimizer"], "--grad-checkpointing" if cfg["grad_checkpointing"] else "--no-grad-checkpointing",
               "--json", *(["--measure"] if measure else [])]  # fmt: skip
        code, output = _run_cli(cmd[3:]) if not measure else _run_process(cmd)
        row = dict(cfg)
        if code != 0:
            row["error"] = output.strip().splitlines()[-1:]
        else:
            result = json.loads(output)
            row.update(predicted_bytes=result["total"], measured_bytes=result.get("measured_peak"))
        rows.append(row)
    return rows


def _run_process(cmd: list[str]) -> tuple[int, str]:
    """A measurement in a process of its own, so that its peak memory is its own."""
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    return proc.returncode, proc.stdout if proc.returncode == 0 else proc.stdout + proc.stderr


def _run_cli(argv: list[str]) -> tuple[int, str]:
    """The same command line in this process (estimates only: no memory to keep apart)."""
    from typer.testing import CliRunner

    from sftlab.cli.main import app

    result = CliRunner().invoke(app, argv)
    return result.exit_code, result.stdout


def gpu_tests(out: Path) -> dict | None:
    """Counts and failures from the GPU-marked pytest run's JUnit file, when gpu_check.sh ran it."""
    path = out / "gpu_tests.xml"
    if not path.is_file():
        return None
    cases = ET.parse(path).getroot().iter("testcase")
    result: dict = {"passed": [], "failed": [], "skipped": []}
    for case in cases:
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            result["failed"].append(name)
        elif (skip := case.find("skipped")) is not None:
            result["skipped"].append(f"{name} ({skip.get('message', '')})")
        else:
            result["passed"].append(name)
    return result


def write_reports(report: dict, out: Path) -> None:
    """``gpu_bench.json`` (everything) and ``gpu_bench.md`` (the tables)."""
    report["gpu_tests"] = gpu_tests(out)
    stages = out / "stages.json"
    report["stages_s"] = json.loads(stages.read_text()) if stages.is_file() else None
    (out / "gpu_bench.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "gpu_bench.md").write_text(markdown(report))


def _gib(n: int | None) -> str:
    return f"{n / GIB:.2f} GiB" if n else "not measured"


def markdown(report: dict) -> str:
    """The comparison, the estimate check and the GPU tests as Markdown tables."""
    a = report["args"]
    head = (
        "**Dry run on CPU (tiny model): checks the script, not a GPU figure.**\n\n"
        if report["dry_run"]
        else ""
    )
    lines = [
        head + f"Device: {report['device']}; model: {report['model']['size']} Llama-style, "
        f"{report['model']['parameters'] / 1e6:.1f}M parameters, random weights; {report['data']['samples']} "
        f"conversations, mean {report['data']['mean_tokens']:.0f} tokens (max {report['data']['max_tokens']}); "
        f"max length {a['seq_len']}, batch {a['batch']}, {a['steps']} steps (the first left out of the rate).",
        "",
        "| method | row | tokens/s | peak memory (max_memory_allocated) | MFU (bf16 peak) | final loss | setup |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in report["rows"]:
        if "tokens_per_s" not in r:
            lines.append(f"| {r['method']} | {r['row']} | {r.get('skipped') or 'failed: ' + r.get('error', '')} "
                         "| | | | |")  # fmt: skip
            continue
        mem = r.get("peak_memory_bytes")
        mfu = r.get("mfu")
        setup = ", ".join(f"{k}={v}" for k, v in (r.get("setup") or {}).items() if v not in (None, False))
        lines.append(
            f"| {r['method']} | {r['row']} | {r['tokens_per_s']:,.0f} | {_gib(mem)} "
            f"| {f'{100 * mfu:.1f}%' if mfu is not None else 'n/a'} | {r['final_loss']:.4f} | {setup} |"
        )
    lines += [
        "",
        "| estimate config | predicted | measured (estimate --measure) | error |",
        "|---|---:|---:|---:|",
    ]
    for e in report["estimate"]:
        name = f"{e['method']}, {e['optimizer']}, batch {e['batch']}, checkpointing {e['grad_checkpointing']}"
        if "error" in e:
            lines.append(f"| {name} | failed: {' '.join(e['error'])} | | |")
            continue
        measured = e.get("measured_bytes")
        err = f"{100 * (e['predicted_bytes'] - measured) / measured:+.1f}%" if measured else "n/a"
        lines.append(f"| {name} | {_gib(e['predicted_bytes'])} | {_gib(measured)} | {err} |")
    tests = report.get("gpu_tests")
    if tests:
        lines += ["", f"GPU tests: {len(tests['passed'])} passed, {len(tests['failed'])} failed, "
                      f"{len(tests['skipped'])} skipped" + "".join(f"\n- failed: {t}" for t in tests["failed"])
                  + "".join(f"\n- skipped: {t}" for t in tests["skipped"])]  # fmt: skip
    lines += ["", "Path selection:", *(f"- {line}" for line in report["plan"]), ""]
    return "\n".join(lines)
