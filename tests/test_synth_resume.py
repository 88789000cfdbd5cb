"""A synth run killed with SIGKILL resumes without asking anything twice (scripted teacher on loopback).

The request logs of the servers are the proof: one line per completed request
with the SHA-256 of its body. The synth CLI runs as a subprocess, as a user
would run it, and is killed at a known point.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import synth_helpers as sh
from sftlab.recipe.load import recipe_from_dict
from sftlab.synth import run_synth
from sftlab.synth.testing import scripted_teacher


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
        recipe = sh.write_recipe(tmp_path / "recipe.yaml", out, url, synth)
        proc = subprocess.Popen(
            sh.cli(recipe), env=sh.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        sh.wait_for(
            lambda: len(sh.lines(log)) >= done_before_kill and state.received > state.completed, 120, proc
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
        rerun = subprocess.run(sh.cli(recipe), env=sh.env(), capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr

        hashes = sh.hashes(log)
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
                json.loads(sh.write_recipe(tmp_path / "fresh.yaml", fresh_out, url, synth).read_text())
            )
        )
    resumed_records = Path(summary["output"]).read_text()
    assert (fresh_out / "synth" / "synth.sftlab.jsonl").read_text() == resumed_records
