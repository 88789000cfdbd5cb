"""Synth pipelines against the real ``sftlab serve`` with a tiny random model (gibberish answers).

Gibberish exercises structure, rejection reasons and accounting: the tokens
counted by synth must equal what the server logged, a re-run must be served
from the cache, and a SIGKILLed run re-asks only answers lost in flight.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

import synth_helpers as sh
from sftlab.recipe.load import recipe_from_dict
from sftlab.synth import run_synth


@pytest.fixture(scope="module")
def real_server(tmp_path_factory, tiny_model_dir):
    from sftlab.serve.testing import running_server

    log = tmp_path_factory.mktemp("serve") / "requests.jsonl"
    with running_server(tiny_model_dir, served_name="tiny", request_log=log, max_batch=4) as url:
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
    before = len(sh.lines(log))
    summary = run_synth(_real_recipe(tmp_path, url, pipeline, **options))
    new = sh.lines(log)[before:]
    usage = summary["usage"]
    # Token accounting equals what the server counted.
    assert usage["requests_sent"] == len(new) > 0
    assert usage["prompt_tokens"] == sum(row["prompt_tokens"] for row in new)
    assert usage["completion_tokens"] == sum(row["completion_tokens"] for row in new)
    # Gibberish is rejected with reasons; whatever is kept is well-formed; the ledger adds up.
    out = tmp_path / "run" / "synth"
    rejects = sh.lines(out / "rejects.jsonl")
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
    assert again["usage"]["requests_sent"] == 0 and len(sh.lines(log)) == before + len(new)


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
    recipe = sh.write_recipe(tmp_path / "recipe.yaml", out, url, synth)
    before = len(sh.lines(log))
    proc = subprocess.Popen(
        sh.cli(recipe), env=sh.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    sh.wait_for(lambda: len(sh.lines(log)) - before >= 2, 120, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    # Let the server finish (and log) a request that was in flight: wait until the log is quiet.
    seen, quiet_since = len(sh.lines(log)), time.monotonic()
    while time.monotonic() - quiet_since < 3.0:
        time.sleep(0.1)
        if len(sh.lines(log)) != seen:
            seen, quiet_since = len(sh.lines(log)), time.monotonic()
    answered = sh.hashes(log)[before:]
    with sqlite3.connect(out / "synth" / "cache.sqlite") as db:
        committed = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    lost_in_flight = len(answered) - committed
    assert 0 <= lost_in_flight <= 1  # concurrency 1: at most the one request in flight

    rerun = subprocess.run(sh.cli(recipe), env=sh.env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    hashes = sh.hashes(log)[before:]
    repeated = sum(n - 1 for n in Counter(hashes).values())
    assert repeated == lost_in_flight
    summary = json.loads((out / "synth" / "summary.json").read_text())
    assert summary["usage"]["cache_hits"] == committed
