"""Pages and endpoints to start a run from a recipe, follow its log, and stop it."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from sftlab.pipeline.run import STAGES
from sftlab.ui.bodies import NOT_JSON, is_json, json_object
from sftlab.ui.jobs import BadJob, Job


def _job(request: Request, job_id: int) -> Job:
    job = request.app.state.jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job


def _summary(job: Job) -> dict:
    return {"id": job.id, "recipe": job.recipe, "state": job.state, "run": job.run, "pid": job.proc.pid}


def register(app: FastAPI, render) -> None:
    @app.get("/launch", response_class=HTMLResponse)
    def launch_page(request: Request):
        jobs = request.app.state.jobs
        return render(
            request, "launch.html.jinja", recipes=jobs.recipes(), recipes_dir=jobs.recipes_dir,
            stages=STAGES, jobs=[_summary(j) for j in reversed(list(jobs.jobs.values()))],
        )  # fmt: skip

    @app.get("/job", response_class=HTMLResponse)
    def job_page(request: Request, id: int):
        return render(request, "job.html.jinja", job=_summary(_job(request, id)))

    @app.post("/api/jobs")
    async def start(request: Request):
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        if not isinstance(body.get("recipe"), str):
            return JSONResponse({"error": "expected {recipe, overrides: [...], until}"}, status_code=400)
        overrides = body.get("overrides") or []
        until = body.get("until") or None
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            return JSONResponse({"error": "overrides: a list of key.path=value strings"}, status_code=400)
        try:
            job = request.app.state.jobs.start(
                body["recipe"], overrides, until if isinstance(until, str) else None
            )
        except BadJob as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        return _summary(job)

    @app.get("/api/jobs/{job_id}")
    def follow(request: Request, job_id: int, offset: int = 0):
        job = _job(request, job_id)
        # the state before the log: the log of a job seen ended is then whole
        summary = {**_summary(job), "returncode": job.proc.poll()}
        text, after = request.app.state.jobs.read_log(job, offset)
        return {**summary, "log": text, "offset": after}

    @app.post("/api/jobs/{job_id}/stop")
    def stop(request: Request, job_id: int):
        if not is_json(request):
            return JSONResponse(NOT_JSON, status_code=415)
        job = _job(request, job_id)
        request.app.state.jobs.stop(job)
        return {**_summary(job), "returncode": job.proc.poll()}
