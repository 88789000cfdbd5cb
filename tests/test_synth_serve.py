"""Synth pipelines against the real ``sftlab serve`` with a tiny random model (gibberish answers).

Gibberish exercises structure, rejection reasons and accounting: the tokens
counted by synth must equal what the server logged, a re-run must be served
from the cache, and a SIGKILLed run re-asks only answers lost in flight.
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

import pytest

from sftlab.data.synth import run_synth
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


@pytest.fixture(scope="module")
def real_server(tmp_path_factory, tiny_model_dir):
    from sftlab.serve.testing import running_server

    log = tmp_path_factory.mktemp("serve") / "requests.jsonl"
    with running_server(tiny_model_dir, request_log=log, max_batch=4) as url:
        yield url, log


def _real_recipe(tmp_path: Path, url: str, pipeline: str, **synth):
    return recipe_from_dict(
        {
            "output_dir": str(tmp_path / "run"),
            "synth": {
                "pipeline": pipeline,
                "teacher": {"base_url": url, "model": "tiny", "max_tokens": 8, "concurrency": 2},
                **synth,
            },
        }
    )


@pytest.mark.parametrize(
    ("pipeline", "options"),
    [
        (
            "self_instruct",
            {"self_instruct": {"num_instructions": 3, "requests_per_round": 1, "max_rounds": 1}},
        ),
        ("evol_instruct", {"evol_instruct": {"limit": 2, "rounds": 1, "min_answer_words": 1}}),
        ("doc_qa", {"doc_qa": {"documents": ["DOC"], "chunk_chars": 200, "overlap_chars": 20}}),
    ],
)
def test_pipelines_against_real_sftlab_serve(tmp_path, real_server, pipeline, options):
    url, log = real_server
    if pipeline == "doc_qa":
        doc = tmp_path / "notes.md"
        doc.write_text(
            "# Rivers\n\nThe Danube flows through ten countries.\n\n# Lakes\n\nBaikal is the deepest lake."
        )
        options = {"doc_qa": {**options["doc_qa"], "documents": [str(doc)]}}
    before = len(_lines(log))
    summary = run_synth(_real_recipe(tmp_path, url, pipeline, **options))
    new = _lines(log)[before:]
    usage = summary["usage"]
    # Token accounting equals what the server counted.
    assert usage["requests_sent"] == len(new) > 0
    assert usage["prompt_tokens"] == sum(row["prompt_tokens"] for row in new)
    assert usage["completion_tokens"] == sum(row["completion_tokens"] for row in new)
    # Gibberish is rejected with reasons; whatever is kept is well-formed; the ledger adds up.
    out = tmp_path / "run" / "synth"
    rejects = _lines(out / "rejects.jsonl")
    assert len(rejects) == summary["rejected_total"]
    first_stage = {"self_instruct": "generate", "evol_instruct": "evolve", "doc_qa": "generate"}[pipeline]
    assert (
        summary["candidates_by_stage"][first_stage]
        == {"self_instruct": 1, "evol_instruct": 2, "doc_qa": 2}[pipeline]
    )
    records = [json.loads(x) for x in Path(summary["output"]).read_text().splitlines()]
    assert len(records) == summary["kept"]
    for rec in records:
        assert (
            rec["meta"]["provenance"]["pipeline"] == pipeline
            and rec["meta"]["provenance"]["teacher"] == "tiny"
        )
        assert [t["role"] for t in rec["turns"]] == ["user", "assistant"]
    # A re-run is served from the cache.
    again = run_synth(_real_recipe(tmp_path, url, pipeline, **options))
    assert again["usage"]["requests_sent"] == 0 and len(_lines(log)) == before + len(new)


@pytest.mark.slow
def test_sigkill_against_real_sftlab_serve_resends_only_answers_lost_in_flight(tmp_path, real_server):
    """Killed after N logged requests: on restart, only answers the server sent but the client had not
    yet committed when it died may be asked again — and the cache says exactly how many those are."""
    url, log = real_server
    synth = {
        "pipeline": "evol_instruct",
        "teacher": {"model": "tiny", "max_tokens": 8, "concurrency": 1},
        "evol_instruct": {"limit": 4, "rounds": 1, "min_answer_words": 1},
    }
    out = tmp_path / "run"
    recipe = _write_recipe(tmp_path / "recipe.yaml", out, url, synth)
    before = len(_lines(log))
    proc = subprocess.Popen(
        _cli(recipe), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _wait_for(lambda: len(_lines(log)) - before >= 2, 120, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    # Let the server finish (and log) a request that was in flight: wait until the log is quiet.
    seen, quiet_since = len(_lines(log)), time.monotonic()
    while time.monotonic() - quiet_since < 3.0:
        time.sleep(0.1)
        if len(_lines(log)) != seen:
            seen, quiet_since = len(_lines(log)), time.monotonic()
    answered = _hashes(log)[before:]
    with sqlite3.connect(out / "synth" / "cache.sqlite") as db:
        committed = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    lost_in_flight = len(answered) - committed
    assert 0 <= lost_in_flight <= 1  # concurrency 1: at most the one request in flight

    rerun = subprocess.run(_cli(recipe), env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    hashes = _hashes(log)[before:]
    repeated = sum(n - 1 for n in Counter(hashes).values())
    assert repeated == lost_in_flight
    summary = json.loads((out / "synth" / "summary.json").read_text())
    assert summary["usage"]["cache_hits"] == committed
