"""The FastAPI app: OpenAI-compatible chat/completions/models endpoints over one generation worker.

Every request is read with a size limit, parsed, validated, turned into prompt
token ids, and handed to the worker; the handler only awaits the result (or the
client's disconnect, which cancels the job: ``serve/delivery.py``), so the event
loop stays free while the model works. Anything the client got wrong is a 400
with an OpenAI-style error body, never a 500.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sftlab.serve import responses as R
from sftlab.serve.delivery import result_unless_gone, streaming_response
from sftlab.serve.requestlog import RequestLog, body_hash
from sftlab.serve.schemas import ApiError, ChatCompletionRequest, CompletionRequest, validate
from sftlab.serve.worker import GenerationWorker, Job, QueueFull, Sampling, WorkerStopped

DEFAULT_MAX_TOKENS = 512
"""``max_tokens`` when a request names none (capped by ``max_tokens_limit``)."""

CLIENT_CLOSED = 499
"""Status of a response nobody reads (nginx's "client closed request"): the request is not logged."""


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

    ``request_timeout`` (seconds, counted from arrival) cuts a request short: one that is generating
    ends with the text so far and ``finish_reason: "length"``, as a ``max_tokens`` cut does (its
    answer is incomplete, not failed); one still queued gets a 503 ``request_timeout`` error.
    """
    if model is None or tokenizer is None:
        from sftlab.models import load_model, load_tokenizer, resolve_model

        resolved = resolve_model(model_ref)
        tokenizer = tokenizer or load_tokenizer(resolved)
        model = model or load_model(resolved, dtype=dtype, device=device, merge_adapter=True)
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
    context = getattr(model.config, "max_position_embeddings", None)

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

    def check_auth(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise ApiError(
                401,
                "missing or incorrect API key; send the header 'Authorization: Bearer <key>'",
                code="invalid_api_key",
            )

    async def read_json(request: Request) -> Any:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body_bytes:
            raise _too_large(int(declared), max_body_bytes)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise _too_large(size, max_body_bytes)
            chunks.append(chunk)
        try:
            return json.loads(b"".join(chunks))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ApiError(400, f"the request body is not valid JSON: {err}") from None
        except RecursionError:
            raise ApiError(400, "the request body nests JSON too deeply") from None

    def sampling_of(req, max_tokens: int | None) -> Sampling:
        if max_tokens is not None and max_tokens > max_tokens_limit:
            raise ApiError(
                400,
                f"max_tokens is {max_tokens} but this server allows at most {max_tokens_limit}",
                param="max_tokens",
            )
        return Sampling(
            temperature=req.temperature,
            top_p=req.top_p,
            max_new_tokens=max_tokens or min(DEFAULT_MAX_TOKENS, max_tokens_limit),
            stop=req.stops(),
            seed=req.seed,
        )

    def check_context(prompt_ids: list[int], sampling: Sampling) -> None:
        if not prompt_ids:
            raise ApiError(400, "the prompt is empty", param="prompt")
        if context and len(prompt_ids) + sampling.max_new_tokens > context:
            raise ApiError(
                400,
                f"the prompt has {len(prompt_ids)} tokens; with max_tokens={sampling.max_new_tokens} it exceeds "
                f"the model's context of {context} tokens; shorten the prompt or lower max_tokens",
                param="messages",
                code="context_length_exceeded",
            )

    def submit(job: Job):
        try:
            return worker.submit(job)
        except QueueFull as err:
            raise ApiError(
                429, f"the server is busy: {err}; retry later", type="rate_limit_error", code="queue_full"
            ) from None
        except WorkerStopped as err:
            raise ApiError(503, str(err), type="server_error", code="shutting_down") from None

    def record(rid: str, endpoint: str, payload: Any, done, stream: bool) -> None:
        if log:
            log.write(
                id=rid,
                endpoint=endpoint,
                body_sha256=body_hash(payload),
                stream=stream,
                prompt_tokens=done.prompt_tokens,
                completion_tokens=done.completion_tokens,
                finish_reason=done.finish_reason,
            )

    async def answer(rid: str, endpoint: str, payload: Any, job: Job, request: Request, body):
        """Await ``job`` and return ``body(done)``; a client that left gets nothing and its job is cancelled."""
        done = await result_unless_gone(submit(job), job, request)
        if done is None:
            return Response(status_code=CLIENT_CLOSED)
        record(rid, endpoint, payload, done, False)
        return body(done)

    def streamed(
        rid: str, endpoint: str, payload: Any, job: Job, request: Request, first: list[dict], chunk, last
    ) -> StreamingResponse:
        def logged(done) -> None:
            record(rid, endpoint, payload, done, True)

        return streaming_response(submit, job, request, first=first, chunk=chunk, last=last, on_done=logged)

    if api_key:

        @app.get("/openapi.json", include_in_schema=False)
        async def openapi(request: Request) -> JSONResponse:
            check_auth(request)
            return JSONResponse(app.openapi())

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": name, "queued": worker.outstanding, "generating": worker.active}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        check_auth(request)
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": 0, "owned_by": "sftlab"}],
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        check_auth(request)
        payload = await read_json(request)
        req = validate(ChatCompletionRequest, payload)
        sampling = sampling_of(req, req.max_completion_tokens or req.max_tokens)
        prompt_ids = _render_chat(tokenizer, req)
        check_context(prompt_ids, sampling)
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        job = Job(prompt_ids, sampling)
        if not req.stream:
            return await answer(
                rid,
                "chat.completions",
                payload,
                job,
                request,
                lambda done: R.chat_completion(rid, name, done),
            )
        created = int(time.time())
        with_usage = bool(req.stream_options and req.stream_options.include_usage)

        def last(done):
            yield R.chat_chunk(rid, name, created, {}, done.finish_reason)
            if with_usage:
                yield {**R.chat_chunk(rid, name, created, {}, None), "choices": [], "usage": R.usage(done)}

        first = [R.chat_chunk(rid, name, created, {"role": "assistant", "content": ""}, None)]
        return streamed(
            rid,
            "chat.completions",
            payload,
            job,
            request,
            first,
            lambda piece: R.chat_chunk(rid, name, created, {"content": piece}, None),
            last,
        )

    @app.post("/v1/completions")
    async def completions(request: Request):
        check_auth(request)
        payload = await read_json(request)
        req = validate(CompletionRequest, payload)
        sampling = sampling_of(req, req.max_tokens)
        prompt_ids = tokenizer(req.prompt_text())["input_ids"]
        check_context(prompt_ids, sampling)
        rid = f"cmpl-{uuid.uuid4().hex}"
        job = Job(prompt_ids, sampling)
        if not req.stream:
            return await answer(
                rid, "completions", payload, job, request, lambda done: R.text_completion(rid, name, done)
            )
        created = int(time.time())
        with_usage = bool(req.stream_options and req.stream_options.include_usage)

        def last(done):
            yield R.text_chunk(rid, name, created, "", done.finish_reason)
            if with_usage:
                yield {**R.text_chunk(rid, name, created, "", None), "choices": [], "usage": R.usage(done)}

        return streamed(
            rid,
            "completions",
            payload,
            job,
            request,
            [],
            lambda piece: R.text_chunk(rid, name, created, piece, None),
            last,
        )

    return app


def _too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        413,
        f"the request body has {size}+ bytes; the limit is {limit} (--max-body-bytes)",
        code="body_too_large",
    )


def _render_chat(tokenizer, req: ChatCompletionRequest) -> list[int]:
    """Token ids of the conversation in the model's own chat template, ending with the assistant prompt."""
    messages = [
        {"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in req.messages
    ]
    if not getattr(tokenizer, "chat_template", None):
        raise ApiError(400, "this model has no chat template; use /v1/completions with a raw prompt")
    try:
        enc = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )
    except Exception as err:  # templates raise their own errors for conversations they refuse (jinja)
        raise ApiError(
            400, f"the model's chat template refused these messages: {err}", param="messages"
        ) from None
    return list(enc["input_ids"])
