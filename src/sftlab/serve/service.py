"""What every endpoint shares: the model's names, authentication, body reading, limits, submission.

The handlers in ``serve/openai_chat.py`` and ``serve/openai_text.py`` read top-down with these
steps; each step raises an :class:`ApiError` for the client's mistake, never a 500.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from sftlab.serve.delivery import result_unless_gone, streaming_response
from sftlab.serve.requestlog import RequestLog, body_hash
from sftlab.serve.schemas import ApiError
from sftlab.serve.worker import GenerationWorker, Job, QueueFull, Sampling, WorkerStopped

DEFAULT_MAX_TOKENS = 512
"""``max_tokens`` when a request names none (capped by ``max_tokens_limit``)."""

CLIENT_CLOSED = 499
"""Status of a response nobody reads (nginx's "client closed request"): the request is not logged."""


class Service:
    """The loaded model behind the routes, with the server's limits."""

    def __init__(
        self,
        worker: GenerationWorker,
        name: str,
        aliases: set[str],
        *,
        api_key: str | None,
        max_tokens_limit: int,
        max_body_bytes: int,
        log: RequestLog | None,
    ):
        self.worker = worker
        self.tokenizer = worker.tokenizer
        self.name = name
        self.aliases = aliases | {name}
        self.api_key = api_key
        self.max_tokens_limit = max_tokens_limit
        self.max_body_bytes = max_body_bytes
        self.log = log
        self.context = getattr(worker.model.config, "max_position_embeddings", None)

    def model_card(self) -> dict[str, Any]:
        return {"id": self.name, "object": "model", "created": 0, "owned_by": "sftlab"}

    def check_model(self, model: str | None) -> None:
        """A request for another model is a 404 ``model_not_found``, as OpenAI answers it."""
        if model is not None and model not in self.aliases:
            raise ApiError(
                404,
                f"The model '{model}' does not exist; this server serves '{self.name}' (GET /v1/models)",
                param="model",
                code="model_not_found",
            )

    def check_auth(self, request: Request) -> None:
        if self.api_key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self.api_key.encode()
        ):
            raise ApiError(
                401,
                "missing or incorrect API key; send the header 'Authorization: Bearer <key>'",
                code="invalid_api_key",
            )

    async def read_json(self, request: Request) -> Any:
        limit = self.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large(int(declared), limit)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(size, limit)
            chunks.append(chunk)
        try:
            return json.loads(b"".join(chunks), parse_constant=_not_json)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ApiError(400, f"the request body is not valid JSON: {err}") from None
        except RecursionError:
            raise ApiError(400, "the request body nests JSON too deeply") from None

    def sampling_of(self, req, max_tokens: int | None, **extra: Any) -> Sampling:
        """The generation settings of ``req``; ``extra`` adds those only one endpoint has (logprobs, grammar)."""
        if max_tokens is not None and max_tokens > self.max_tokens_limit:
            raise ApiError(
                400,
                f"max_tokens is {max_tokens} but this server allows at most {self.max_tokens_limit}",
                param="max_tokens",
            )
        return Sampling(
            temperature=req.temperature,
            top_p=req.top_p,
            max_new_tokens=max_tokens or min(DEFAULT_MAX_TOKENS, self.max_tokens_limit),
            stop=req.stops(),
            seed=req.seed,
            presence_penalty=req.presence_penalty,
            frequency_penalty=req.frequency_penalty,
            logit_bias=req.bias(self.worker.vocab_size),
            **extra,
        )

    def check_context(self, prompt_ids: list[int], sampling: Sampling) -> None:
        if not prompt_ids:
            raise ApiError(400, "the prompt is empty", param="prompt")
        if self.context and len(prompt_ids) + sampling.max_new_tokens > self.context:
            raise ApiError(
                400,
                f"the prompt has {len(prompt_ids)} tokens; with max_tokens={sampling.max_new_tokens} it exceeds "
                f"the model's context of {self.context} tokens; shorten the prompt or lower max_tokens",
                param="messages",
                code="context_length_exceeded",
            )

    def submit(self, job: Job):
        try:
            return self.worker.submit(job)
        except QueueFull as err:
            raise ApiError(
                429, f"the server is busy: {err}; retry later", type="rate_limit_error", code="queue_full"
            ) from None
        except WorkerStopped as err:
            raise ApiError(503, str(err), type="server_error", code="shutting_down") from None

    def record(self, rid: str, endpoint: str, payload: Any, done, stream: bool) -> None:
        if self.log:
            self.log.write(
                id=rid,
                endpoint=endpoint,
                body_sha256=body_hash(payload),
                stream=stream,
                prompt_tokens=done.prompt_tokens,
                completion_tokens=done.completion_tokens,
                finish_reason=done.finish_reason,
            )

    async def answer(self, rid: str, endpoint: str, payload: Any, job: Job, request: Request, body):
        """Await ``job`` and return ``body(done)``; a client that left gets nothing and its job is cancelled."""
        done = await result_unless_gone(self.submit(job), job, request)
        if done is None:
            return Response(status_code=CLIENT_CLOSED)
        self.record(rid, endpoint, payload, done, False)
        return body(done)

    def streamed(
        self, rid: str, endpoint: str, payload: Any, job: Job, request: Request, events
    ) -> StreamingResponse:
        """Stream ``job`` as SSE; ``events`` has ``first``, ``chunk(piece, logprobs)`` and ``last(done)``."""

        def logged(done) -> None:
            self.record(rid, endpoint, payload, done, True)

        return streaming_response(
            self.submit,
            job,
            request,
            first=events.first(),
            chunk=events.chunk,
            last=events.last,
            on_done=logged,
        )


def _not_json(constant: str):
    """Python's json reads NaN and Infinity; JSON has neither, and a schema holding one breaks later."""
    raise ApiError(400, f"the request body is not valid JSON: {constant} is not a JSON value")


def too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        413,
        f"the request body has {size}+ bytes; the limit is {limit} (--max-body-bytes)",
        code="body_too_large",
    )
