"""The FastAPI app: OpenAI-compatible chat/completions/models endpoints over one generation worker.

Every request is read with a size limit, parsed, validated, turned into prompt
token ids, and handed to the worker; the handler only awaits the result (or the
client's disconnect, which cancels the job: ``serve/delivery.py``), so the event
loop stays free while the model works. Anything the client got wrong is a 4xx
with an OpenAI-style error body, never a 500; a field the server does not
implement is a 400 naming it, never ignored (``serve/schemas.py``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sftlab.serve.openai_chat import chat_completions
from sftlab.serve.openai_text import completions
from sftlab.serve.requestlog import RequestLog
from sftlab.serve.schemas import ApiError
from sftlab.serve.service import CLIENT_CLOSED, DEFAULT_MAX_TOKENS, Service
from sftlab.serve.worker import GenerationWorker

__all__ = ["CLIENT_CLOSED", "DEFAULT_MAX_TOKENS", "create_app"]


def create_app(
    model_ref: str | None = None,
    *,
    api_key: str | None = None,
    max_tokens_limit: int = 2048,
    max_body_bytes: int = 1_000_000,
    max_queue: int = 256,
    max_batch: int = 8,
    request_timeout: float | None = None,
    request_log: str | Path | None = None,
    served_name: str | None = None,
    dtype: str = "auto",
    device: str | None = None,
    model=None,
    tokenizer=None,
) -> FastAPI:
    """Load ``model_ref`` (model, adapter or run folder) and return the app; pass ``model``/``tokenizer`` to reuse loaded ones.

    The model's id (``/v1/models``) is ``served_name``, else the folder's name; requests may also
    name it by ``model_ref`` as given. ``request_timeout`` (seconds, counted from arrival) cuts a
    request short: one that is generating ends with the text so far and ``finish_reason:
    "length"``, as a ``max_tokens`` cut does; one still queued gets a 503 ``request_timeout`` error.
    """
    if model is None or tokenizer is None:
        model, tokenizer = _load(model_ref, model, tokenizer, dtype=dtype, device=device)
    model.eval()
    name = served_name or (Path(model_ref).name if model_ref else "sftlab-model")
    worker = GenerationWorker(
        model,
        tokenizer,
        max_queue=max_queue,
        max_batch=max_batch,
        request_timeout=request_timeout,
        start=False,
    )
    log = RequestLog(request_log) if request_log else None
    svc = Service(
        worker,
        name,
        {str(model_ref)} if model_ref else set(),
        api_key=api_key,
        max_tokens_limit=max_tokens_limit,
        max_body_bytes=max_body_bytes,
        log=log,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        worker.start()
        yield
        worker.close()
        if log:
            log.close()

    # with a key, the API description is served only to clients that send it (route below)
    openapi_url = None if api_key else "/openapi.json"
    app = FastAPI(title="sftlab", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=openapi_url)
    app.state.worker = worker
    app.state.served_name = name
    app.state.service = svc
    _errors(app)
    _routes(app, svc)
    return app


def _load(model_ref: str | None, model, tokenizer, *, dtype: str, device: str | None):
    from sftlab.models import load_model, load_tokenizer, resolve_model

    resolved = resolve_model(model_ref)
    tokenizer = tokenizer or load_tokenizer(resolved)
    model = model or load_model(resolved, dtype=dtype, device=device, merge_adapter=True)
    return model, tokenizer


def _errors(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, err: ApiError):
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse(err.body(), status_code=err.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, err: StarletteHTTPException):
        return JSONResponse(ApiError(err.status_code, str(err.detail)).body(), status_code=err.status_code)

    @app.exception_handler(Exception)
    async def _bug(_request: Request, err: Exception):
        body = ApiError(500, f"internal error: {type(err).__name__}: {err}", type="server_error").body()
        return JSONResponse(body, status_code=500)


def _routes(app: FastAPI, svc: Service) -> None:
    if svc.api_key:

        @app.get("/openapi.json", include_in_schema=False)
        async def openapi(request: Request) -> JSONResponse:
            svc.check_auth(request)
            return JSONResponse(app.openapi())

    @app.get("/health")
    async def health() -> dict[str, Any]:
        worker = svc.worker
        return {"status": "ok", "model": svc.name, "queued": worker.outstanding, "generating": worker.active}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        svc.check_auth(request)
        return {"object": "list", "data": [svc.model_card()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str, request: Request) -> dict[str, Any]:
        svc.check_auth(request)
        svc.check_model(model_id)
        return svc.model_card()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await chat_completions(svc, request)

    @app.post("/v1/completions")
    async def text(request: Request):
        return await completions(svc, request)
