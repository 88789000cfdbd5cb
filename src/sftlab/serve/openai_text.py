"""``POST /v1/completions``: a raw prompt continued, with the legacy ``logprobs: k`` shape."""

from __future__ import annotations

import asyncio
import time
import uuid

from fastapi import Request

from sftlab.serve import responses as R
from sftlab.serve.constrain import token_bytes
from sftlab.serve.schemas import CompletionRequest, validate
from sftlab.serve.service import Service
from sftlab.serve.worker import Completion, Job


async def completions(svc: Service, request: Request):
    svc.check_auth(request)
    payload = await svc.read_json(request)
    req = validate(CompletionRequest, payload)
    svc.check_model(req.model)
    sampling = svc.sampling_of(req, req.max_tokens, logprobs=req.logprobs)
    prompt_ids = svc.tokenizer(req.prompt_text())["input_ids"]
    svc.check_context(prompt_ids, sampling)
    token_text = (
        await asyncio.to_thread(token_bytes, svc.worker.grammars) if req.logprobs is not None else None
    )
    reply = _Reply(svc.name, token_text)
    job = Job(prompt_ids, sampling)
    if not req.stream:
        return await svc.answer(reply.rid, "completions", payload, job, request, reply.body)
    reply.usage = bool(req.stream_options and req.stream_options.include_usage)
    return svc.streamed(reply.rid, "completions", payload, job, request, reply)


class _Reply:
    def __init__(self, name: str, token_text):
        self.rid = f"cmpl-{uuid.uuid4().hex}"
        self.name = name
        self.token_text = token_text
        self.created = int(time.time())
        self.usage = False
        self.logprobs_sent = 0
        self.offset = 0

    def _logprobs(self, entries) -> dict | None:
        if not self.token_text:
            return None
        out = R.text_logprobs(entries, self.token_text, self.offset)
        self.offset += sum(len(t) for t in out["tokens"])
        return out

    def body(self, done: Completion) -> dict:
        return R.text_completion(self.rid, self.name, done, self._logprobs(done.logprobs or []))

    def first(self) -> list[dict]:
        return []

    def chunk(self, piece: str, logprobs: list) -> list[dict]:
        self.logprobs_sent += len(logprobs)
        return [R.text_chunk(self.rid, self.name, self.created, piece, None, self._logprobs(logprobs))]

    def last(self, done: Completion):
        leftover = (done.logprobs or [])[self.logprobs_sent :]
        yield R.text_chunk(
            self.rid, self.name, self.created, "", done.finish_reason, self._logprobs(leftover)
        )
        if self.usage:
            yield {
                **R.text_chunk(self.rid, self.name, self.created, "", None),
                "choices": [],
                "usage": R.usage(done),
            }
