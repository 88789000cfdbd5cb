"""Deliver a job's result to its HTTP client, and cancel the job the moment the client leaves.

uvicorn tells the app that a client disconnected by answering ``receive()`` with
``http.disconnect``; once the body has been read, ``receive()`` waits for exactly that, so
watching it costs nothing while the model works. A non-streamed request stops waiting and
cancels its job; a stream cancels its job and ends. Either way the sequence leaves the batch at
the next decode step instead of generating to ``max_tokens`` for nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import Future
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from sftlab.serve import responses as R
from sftlab.serve.schemas import ApiError
from sftlab.serve.worker import Completion, Job, RequestTimeout, WorkerStopped


def api_error(err: BaseException) -> ApiError:
    """The OpenAI-style error a client sees when its job failed with ``err``."""
    if isinstance(err, RequestTimeout):
        return ApiError(503, str(err), type="server_error", code="request_timeout")
    if isinstance(err, WorkerStopped):
        return ApiError(503, str(err), type="server_error", code="shutting_down")
    return ApiError(500, f"generation failed: {err}", type="server_error")


async def client_gone(request: Request) -> None:
    """Return once the client has disconnected."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def result_unless_gone(future: Future, job: Job, request: Request) -> Completion | None:
    """The job's completion, or ``None`` when the client left first (the job is then cancelled)."""
    waiting = asyncio.wrap_future(future)
    gone = asyncio.ensure_future(client_gone(request))
    try:
        await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the server cancelled this handler: free the worker too
        job.cancelled.set()
        raise
    finally:
        gone.cancel()
    if waiting.done():
        try:
            return waiting.result()
        except (RequestTimeout, WorkerStopped) as err:
            raise api_error(err) from None
    job.cancelled.set()
    waiting.add_done_callback(_consume)  # nobody reads a late error: keep it out of the log
    return None


def streaming_response(
    submit: Callable[[Job], Future],
    job: Job,
    request: Request,
    *,
    first: Iterable[dict[str, Any]],
    chunk: Callable[[str, list], Iterable[dict[str, Any]]],
    last: Callable[[Completion], Iterable[dict[str, Any]]],
    on_done: Callable[[Completion], None],
) -> StreamingResponse:
    """Submit ``job`` now (so a full queue is still a 429) and stream it as SSE.

    The body is the ``first`` events, the ``chunk`` events of each text piece (with the
    log-probabilities of its tokens), the ``last`` events and ``[DONE]``; ``on_done`` runs once the
    last event is out.
    """
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue = asyncio.Queue()
    end = object()
    job.on_piece = lambda piece, logprobs: loop.call_soon_threadsafe(pieces.put_nowait, (piece, logprobs))
    future = submit(job)
    future.add_done_callback(lambda _f: loop.call_soon_threadsafe(pieces.put_nowait, end))

    def left(gone: asyncio.Future) -> None:
        if not gone.cancelled():  # the client disconnected: cancel the job, end the stream
            job.cancelled.set()
            pieces.put_nowait(end)

    async def events() -> AsyncIterator[str]:
        gone = asyncio.ensure_future(client_gone(request))
        gone.add_done_callback(left)
        try:
            for obj in first:
                yield R.sse(obj)
            while (item := await pieces.get()) is not end:
                for obj in chunk(*item):
                    yield R.sse(obj)
            if job.cancelled.is_set() or future.cancelled():
                return
            err = future.exception()
            if err is not None:
                yield R.sse(api_error(err).body())
                return
            done = future.result()
            for obj in last(done):
                yield R.sse(obj)
            yield R.sse("[DONE]")
            on_done(done)
        finally:
            gone.cancel()
            job.cancelled.set()

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _consume(waiting: asyncio.Future) -> None:
    if not waiting.cancelled():
        waiting.exception()
