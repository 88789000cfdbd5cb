"""A synth run killed with SIGKILL resumes without asking anything twice (scripted teacher on loopback).

The request logs of the servers are the proof: one line per completed request
with the SHA-256 of its body. The synth CLI runs as a subprocess, as a user
would run it, and is killed at a known point.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sftlab.data.synth import run_synth
from sftlab.data.synth.testing import scripted_teacher
from sftlab.recipe.load import recipe_from_dict


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _hashes(path: Path) -> list[str]:
    return [row["body_sha256"] for row in _lines(path)]


def _cli(recipe: Path) -> list[str]:
    return [sys.executable, "-m", "sftlab.cli.main", "data", "synth", str(recipe)]


def _env() -> dict[str, str]:
    return {**os.environ, "SFTLAB_PROGRESS": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _wait_for(condition, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the synth CLI exited early ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the synth CLI")
        time.sleep(0.02)


def _write_recipe(path: Path, out: Path, url: str, synth: dict) -> Path:
    teacher = {"base_url": url, "backoff_s": 0.01, **synth.get("teacher", {})}
    body = {"output_dir": str(out), "synth": {**synth, "teacher": teacher}}
    path.write_text(json.dumps(body))  # JSON is YAML
    return path


def test_sigkill_halfway_then_restart_sends_no_request_twice(tmp_path):
    log = tmp_path / "requests.jsonl"
    done_before_kill = 14
    synth = {
        "pipeline": "self_instruct",
        "teacher": {"concurrency": 3},
        "self_instruct": {"num_instructions": 12, "requests_per_round": 3},
    }
    out = tmp_path / "run"
    # The server answers 14 requests, then holds every later one: the client is killed while
    # requests are in flight, at a point the test controls exactly.
    with scripted_teacher(log, hang_after=done_before_kill) as (url, state):
        recipe = _write_recipe(tmp_path / "recipe.yaml", out, url, synth)
        proc = subprocess.Popen(
            _cli(recipe), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        _wait_for(
            lambda: len(_lines(log)) >= done_before_kill and state.received > state.completed, 120, proc
        )
        time.sleep(1.0)  # answers already received are committed within microseconds; be generous
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
        assert not (out / "synth" / "summary.json").exists()  # nothing written half
        assert not list((out / "synth").glob("synth*.jsonl"))
        with sqlite3.connect(out / "synth" / "cache.sqlite") as db:
            assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == done_before_kill

        state.hang_after = None
        state.released = True
        rerun = subprocess.run(_cli(recipe), env=_env(), capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr

        hashes = _hashes(log)
        assert len(hashes) > done_before_kill
        assert [h for h, n in Counter(hashes).items() if n > 1] == []  # each request body at most once
        summary = json.loads((out / "synth" / "summary.json").read_text())
        assert summary["usage"]["cache_hits"] == done_before_kill
        assert summary["usage"]["requests_sent"] == len(hashes) - done_before_kill
        assert summary["kept"] == 12

        # The resumed run produced exactly what an uninterrupted run produces.
        fresh_out = tmp_path / "fresh"
        run_synth(
            recipe_from_dict(
                json.loads(_write_recipe(tmp_path / "fresh.yaml", fresh_out, url, synth).read_text())
            )
        )
    resumed_records = Path(summary["output"]).read_text()
    assert (fresh_out / "synth" / "synth.sftlab.jsonl").read_text() == resumed_records
