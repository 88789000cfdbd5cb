"""Starting a run from the workbench: ``sftlab run`` as a child process, its log followed, stopped cleanly."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from sftlab.ui.app import create_app
from ui_helpers import write_recipe

WAIT = 600  # seconds a child run may take on a slow, shared machine


def _until(client, job_id, done, message):
    deadline, log = time.monotonic() + WAIT, ""
    while time.monotonic() < deadline:
        out = client.get(f"/api/jobs/{job_id}", params={"offset": len(log.encode())}).json()
        log += out["log"]
        if done(out, log):
            return out, log
        time.sleep(0.2)
    raise AssertionError(f"{message}; log so far:\n{log}")


@pytest.fixture
def workspace(tmp_path, tiny_model_dir):
    write_recipe(tmp_path, str(tiny_model_dir), max_steps=100_000)
    (tmp_path / "runs").mkdir()
    app = create_app(tmp_path / "runs", recipes=tmp_path)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield tmp_path, client


def test_a_run_started_from_a_recipe_is_followed_to_the_end(workspace):
    folder, client = workspace
    assert "<option>recipe.yaml</option>" in client.get("/launch").text
    job = client.post(
        "/api/jobs", json={"recipe": "recipe.yaml", "overrides": ["name=launched"], "until": "curate"}
    )
    assert job.status_code == 200 and job.json()["run"] == "tiny"
    out, log = _until(client, job.json()["id"], lambda o, _: o["state"] != "running", "the run did not end")
    assert out["state"] == "finished" and out["returncode"] == 0
    assert (
        "in 12 = kept 10 + rejected 2" in log
        and (folder / "runs" / "tiny" / "curation" / "kept.jsonl").is_file()
    )
    assert 'href="/run?r=tiny"' in client.get("/launch").text
    assert 'id="run-link"' in client.get("/job", params={"id": job.json()["id"]}).text


@pytest.mark.slow  # a real training or two model servers
def test_stop_interrupts_a_training_run_cleanly(workspace):
    folder, client = workspace
    job = client.post("/api/jobs", json={"recipe": "recipe.yaml", "until": "train"}).json()
    metrics = folder / "runs" / "tiny" / "train" / "metrics.jsonl"
    _until(client, job["id"], lambda o, _: metrics.is_file() and metrics.stat().st_size > 0 or o["state"] != "running",
           "training did not start")  # fmt: skip
    stopped = client.post(f"/api/jobs/{job['id']}/stop", json={})
    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
    out, log = _until(client, job["id"], lambda o, _: o["state"] != "running", "the run did not stop")
    assert out["returncode"] == 130, log[-3000:]  # the CLI's exit code for an interrupted run


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"recipe": "../recipe.yaml"}, "not inside the recipes folder"),
        ({"recipe": "/etc/passwd"}, "not inside the recipes folder"),
        ({"recipe": "fruit.jsonl"}, "no such recipe file"),
        ({"recipe": "recipe.yaml", "overrides": ["--force"]}, "override '--force': write key.path=value"),
        ({"recipe": "recipe.yaml", "overrides": ["name=a\n--force"]}, "write key.path=value"),
        ({"recipe": "recipe.yaml", "overrides": ["training.nope=1"]}, "training.nope"),
        ({"recipe": "recipe.yaml", "until": "nope"}, "until 'nope': one of curate"),
        ({"recipe": "recipe.yaml", "overrides": "name=x"}, "overrides: a list"),
    ],
)
def test_bad_start_requests_are_one_line_400s_and_start_nothing(workspace, body, message):
    _, client = workspace
    response = client.post("/api/jobs", json=body)
    assert response.status_code == 400 and message in response.json()["error"]
    assert client.app.state.jobs.jobs == {}


def test_unknown_jobs_are_404(workspace):
    _, client = workspace
    assert (
        client.get("/api/jobs/7").status_code == 404
        and client.get("/job", params={"id": 7}).status_code == 404
    )
