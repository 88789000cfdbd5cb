"""The workbench app: runs list, run page with the live loss curve, data review, record page, decisions.

Pages name a run by its path under the runs folder (``?r=quickstart``); every
path a client sends goes through :func:`sftlab.ui.runs.inside`, so nothing
outside the runs folder is read or served (404 when absent, 403 when it would
leave the folder). With a token, every request must carry it (``?token=``
once, then a cookie, or ``Authorization: Bearer``); without one, only loopback
``Host`` names are answered (no DNS rebinding from a web page). Decisions are
posted as JSON, which a cross-site form cannot send.
"""

from __future__ import annotations

import contextlib
import hmac
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from sftlab.ui import chat, compare, data, launch, mask, runs
from sftlab.ui.bodies import json_object
from sftlab.ui.jobs import Jobs

HERE = Path(__file__).parent
COOKIE = "sftlab_ui_token"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
PAGE_SIZE = 50


def create_app(
    root: str | Path, *, token: str | None = None, who: str = "reviewer", recipes: str | Path = "."
) -> FastAPI:
    """The app over the runs folder ``root``; ``who`` signs the review decisions; runs start from ``recipes``."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        app.state.jobs.close()  # runs and chat servers started here end with the workbench
        app.state.chat.close()

    app = FastAPI(title="sftlab ui", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.root = Path(root).resolve()
    app.state.who = who
    app.state.jobs = Jobs(Path(recipes), app.state.root)
    app.state.templates = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["jinja"])
    )
    app.middleware("http")(_guard(token))
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _pages(app)
    _api(app)
    launch.register(app, _render)
    chat.register(app, _render, _run_dir)
    compare.register(app, _render, _run_dir)
    return app


def _guard(token: str | None):
    async def guard(request: Request, call_next):
        if token is None:
            host = _host_name(request.headers.get("host") or "")
            if host not in LOOPBACK:
                return JSONResponse({"error": f"host {host!r} is not a loopback name"}, status_code=403)
            return await call_next(request)
        given = (
            request.query_params.get("token")
            or request.cookies.get(COOKIE)
            or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        )
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            return JSONResponse({"error": "a valid token is required (?token=...)"}, status_code=401)
        response = await call_next(request)
        if request.query_params.get("token"):
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    return guard


def _host_name(header: str) -> str:
    """``127.0.0.1:7860`` → ``127.0.0.1``; ``[::1]:7860`` → ``[::1]``."""
    return header.split("]")[0] + "]" if header.startswith("[") else header.rsplit(":", 1)[0]


def _run_dir(request: Request, name: str | None) -> Path:
    """The run folder a request names; 404 unless it is a run folder inside the runs folder."""
    root: Path = request.app.state.root
    try:
        path = root if name in (None, "", ".") else runs.inside(root, name)
    except runs.OutsideRoot:
        raise HTTPException(403, "outside the runs folder") from None
    if not path.is_dir() or not runs.is_run(path):
        raise HTTPException(404, f"no run {name!r}")
    return path


def _choose(request: Request, items: list, decided: dict) -> tuple[list, dict[str, str]]:
    try:
        return data.choose(items, request.query_params, decided)
    except data.BadQuery as err:
        raise HTTPException(400, str(err)) from None


def _render(request: Request, template: str, **context: Any) -> HTMLResponse:
    page = request.app.state.templates.get_template(template)
    return HTMLResponse(page.render(root=request.app.state.root, **context))


def _pages(app: FastAPI) -> None:
    @app.get("/", response_class=HTMLResponse)
    def runs_list(request: Request):
        return _render(request, "runs.html.jinja", runs=runs.find_runs(request.app.state.root))

    @app.get("/run", response_class=HTMLResponse)
    def run_page(request: Request, r: str = "."):
        path = _run_dir(request, r)
        info = runs.load_run(request.app.state.root, path)
        return _render(request, "run.html.jinja", run=info, reports=runs.reports(path), stages=runs.STAGES)

    _data_pages(app)

    @app.get("/files/{rel:path}")
    def files(request: Request, rel: str):
        try:
            path = runs.inside(request.app.state.root, rel)
        except runs.OutsideRoot:
            raise HTTPException(403, "outside the runs folder") from None
        if not path.is_file():
            raise HTTPException(404, f"no file {rel!r}")
        return FileResponse(path)

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/favicon.ico")
    def favicon():
        return RedirectResponse("/static/favicon.svg")


def _data_pages(app: FastAPI) -> None:
    @app.get("/data", response_class=HTMLResponse)
    def data_page(request: Request, r: str = ".", page: int = 1):
        path = _run_dir(request, r)
        items = data.load_items(path)
        decided = data.decisions(path)
        chosen, query = _choose(request, items, decided)
        query = {"r": r, **query}
        page = max(1, page)
        return _render(
            request,
            "data.html.jinja",
            run=r,
            items=chosen[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
            total=len(chosen),
            all_counts=data.counts(items),
            decisions=decided,
            reviewed=Counter(d["decision"] for d in decided.values()),
            query=query,
            page=page,
            pages=max(1, -(-len(chosen) // PAGE_SIZE)),
            link=lambda **change: "/data?" + urlencode({k: v for k, v in {**query, **change}.items() if v}),
            has_curation=(path / "curation").is_dir(),
            score_names=sorted({k for it in items[:2000] for k in it.scores}),
        )

    @app.get("/record", response_class=HTMLResponse)
    def record_page(request: Request, r: str, id: str):
        path = _run_dir(request, r)
        decided = data.decisions(path)
        chosen, query = _choose(request, data.load_items(path), decided)
        query = {"r": r, **query}
        index = next((i for i, it in enumerate(chosen) if it.id == id), None)
        if index is None:
            raise HTTPException(404, f"no record {id!r} here (or not under these filters)")
        following = chosen[index + 1] if index + 1 < len(chosen) else None
        return _render(
            request,
            "record.html.jinja",
            run=r,
            item=chosen[index],
            position=index + 1,
            total=len(chosen),
            decision=decided.get(id),
            related=data.related(chosen[index], data.load_items(path)),
            next_url=("/record?" + urlencode({**query, "id": following.id})) if following else "",
            back_url="/data?" + urlencode(query),
        )


def _api(app: FastAPI) -> None:
    @app.get("/api/metrics")
    def metrics(request: Request, r: str = "."):
        path = _run_dir(request, r)
        return {
            "run": r,
            "stages": runs.stage_states(path),
            "max_steps": runs.planned_steps(path),
            **runs.read_metrics(path),
        }

    @app.get("/api/mask")
    def mask_preview(request: Request, r: str, id: str):
        path = _run_dir(request, r)
        item = next((it for it in data.load_items(path) if it.id == id), None)
        if item is None:
            raise HTTPException(404, f"no record {id!r} in this run's curation")
        try:
            return mask.mask_html(path, item.record)
        except mask.MaskUnavailable as err:
            return JSONResponse({"error": str(err)}, status_code=503)

    @app.post("/api/review")
    async def review(request: Request):
        body = await json_object(request)
        if isinstance(body, JSONResponse):
            return body
        if not isinstance(body.get("id"), str):
            return JSONResponse({"error": "expected {run, id, decision[, answer, why]}"}, status_code=400)
        path = _run_dir(request, body.get("run") if isinstance(body.get("run"), str) else None)
        why = body.get("why") if isinstance(body.get("why"), str) else ""
        try:
            row = data.append_decision(
                path,
                body["id"],
                str(body.get("decision")),
                who=request.app.state.who,
                why=why,
                answer=body.get("answer"),
            )
        except data.BadDecision as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        return row

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, err: HTTPException):
        return JSONResponse({"error": err.detail}, status_code=err.status_code)
