"""Helpers shared by the synth tests that drive the CLI in a subprocess against a loopback teacher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def hashes(path: Path) -> list[str]:
    return [row["body_sha256"] for row in lines(path)]


def cli(recipe: Path) -> list[str]:
    return [sys.executable, "-m", "sftlab.cli.main", "data", "synth", str(recipe)]


def env() -> dict[str, str]:
    return {**os.environ, "SFTLAB_PROGRESS": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def wait_for(condition, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the synth CLI exited early ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the synth CLI")
        time.sleep(0.02)


def write_recipe(path: Path, out: Path, url: str, synth: dict) -> Path:
    teacher = {"base_url": url, "backoff_s": 0.01, **synth.get("teacher", {})}
    body = {"output_dir": str(out), "synth": {**synth, "teacher": teacher}}
    path.write_text(json.dumps(body))  # JSON is YAML
    return path
