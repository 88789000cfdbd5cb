"""``POST /v1/chat/completions``: the conversation in the model's template, tools, JSON output, logprobs."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from typing import Any

from fastapi import Request

from sftlab.serve import responses as R
from sftlab.serve import tools as T
from sftlab.serve.constrain import token_bytes
from sftlab.serve.schemas import ApiError, ChatCompletionRequest, validate
from sftlab.serve.service import Service
from sftlab.serve.worker import Completion, Job


async def chat_completions(svc: Service, request: Request):
    svc.check_auth(request)
    payload = await svc.read_json(request)
    req = validate(ChatCompletionRequest, payload)
    svc.check_model(req.model)
    syntax = T.require_syntax(svc.tokenizer, req)
    # compiling (and, the first time, building llguidance's tokenizer) runs off the event loop
    if _constrained(req):
        grammar = await asyncio.to_thread(_grammar, svc, req, syntax)
    else:
        grammar = _grammar(svc, req, syntax)
    top = req.logprob_count()
    sampling = svc.sampling_of(
        req, req.max_completion_tokens or req.max_tokens, logprobs=top, grammar=grammar
    )
    if stops := T.extra_stops(req, syntax):
        sampling = dataclasses.replace(sampling, stop=sampling.stop + stops)
    prompt_ids = _render(svc.tokenizer, req)
    svc.check_context(prompt_ids, sampling)
    token_text = await asyncio.to_thread(token_bytes, svc.worker.grammars) if top is not None else None
    reply = _Reply(svc.name, syntax if req.tool_choice != "none" else None, token_text)
    reply.names = {t.function.name for t in req.tools or []}
    job = Job(prompt_ids, sampling)
    if not req.stream:
        return await svc.answer(reply.rid, "chat.completions", payload, job, request, reply.body)
    reply.usage = bool(req.stream_options and req.stream_options.include_usage)
    return svc.streamed(reply.rid, "chat.completions", payload, job, request, reply)


def _constrained(req: ChatCompletionRequest) -> bool:
    fmt = req.response_format
    return bool(fmt and fmt.type != "text") or req.tool_choice not in (None, "auto", "none")


def _grammar(svc: Service, req: ChatCompletionRequest, syntax: str | None) -> str | None:
    """The grammar the reply must match: a forced tool call or the requested JSON, else None."""
    grammars = svc.worker.grammars
    fmt = req.response_format
    forced = T.forced_grammar(req, syntax, svc.tokenizer) if syntax else None
    if forced and fmt and fmt.type != "text":
        raise ApiError(
            400, "response_format cannot be combined with a forced tool_choice", param="response_format"
        )
    if forced:
        return grammars.lark(forced, "tools")
    if fmt is None or fmt.type == "text":
        if fmt and fmt.json_schema is not None:
            raise ApiError(
                400, "json_schema goes with type 'json_schema'", param="response_format.json_schema"
            )
        return None
    if fmt.type == "json_object":
        if fmt.json_schema is not None:
            raise ApiError(
                400, "json_schema goes with type 'json_schema'", param="response_format.json_schema"
            )
        return grammars.json_schema({"type": "object"}, "response_format")
    if fmt.json_schema is None:
        raise ApiError(
            400, "type 'json_schema' needs a json_schema object", param="response_format.json_schema"
        )
    schema = fmt.json_schema.schema_ if fmt.json_schema.schema_ is not None else {"type": "object"}
    return grammars.json_schema(schema, "response_format.json_schema.schema")


def _render(tokenizer, req: ChatCompletionRequest) -> list[int]:
    """Token ids of the conversation in the model's own chat template, ending with the assistant prompt."""
    messages = T.template_messages(req)
    if not getattr(tokenizer, "chat_template", None):
        raise ApiError(400, "this model has no chat template; use /v1/completions with a raw prompt")
    try:
        enc = tokenizer.apply_chat_template(
            messages, tools=T.tool_dicts(req), add_generation_prompt=True, tokenize=True, return_dict=True
        )
    except Exception as err:  # templates raise their own errors for conversations they refuse (jinja)
        raise ApiError(
            400, f"the model's chat template refused these messages: {err}", param="messages"
        ) from None
    return list(enc["input_ids"])


class _Reply:
    """Turns a completion (or its streamed pieces) into OpenAI's chat shapes, tool calls included."""

    def __init__(self, name: str, syntax: str | None, token_text):
        self.rid = f"chatcmpl-{uuid.uuid4().hex}"
        self.name = name
        self.syntax = syntax
        self.token_text = token_text
        self.created = int(time.time())
        self.usage = False
        self.tools = T.ToolStream(syntax) if syntax else None
        self.logprobs_sent = 0
        self.names: set[str] = set()
        """The offered tools: a parsed call must name one of them."""

    def _logprobs(self, entries) -> dict | None:
        return R.chat_logprobs(entries, self.token_text) if self.token_text else None

    def message(self, done: Completion) -> tuple[dict[str, Any], str, list]:
        content, calls = T.parse_calls(done.text, self.syntax, self.names) if self.syntax else (done.text, [])
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = T.call_dicts(calls)
        return message, "tool_calls" if calls else done.finish_reason, calls

    def body(self, done: Completion) -> dict[str, Any]:
        message, finish, _ = self.message(done)
        return R.chat_completion(
            self.rid, self.name, done, message, finish, self._logprobs(done.logprobs or [])
        )

    # --- streaming -----------------------------------------------------------------------------
    def first(self) -> list[dict]:
        return [self._chunk({"role": "assistant", "content": ""}, None)]

    def chunk(self, piece: str, logprobs: list) -> list[dict]:
        self.logprobs_sent += len(logprobs)
        text = self.tools.feed(piece) if self.tools else piece
        if not text and not (logprobs and self.token_text):
            return []
        return [self._chunk({"content": text}, None, self._logprobs(logprobs))]

    def last(self, done: Completion):
        content, finish, calls = self.message(done)
        rest = self.tools.rest(content["content"]) if self.tools else ""
        leftover = (done.logprobs or [])[self.logprobs_sent :]
        if rest or (leftover and self.token_text):
            yield self._chunk({"content": rest}, None, self._logprobs(leftover))
        if calls:
            yield self._chunk({"tool_calls": T.call_dicts(calls, streamed=True)}, None)
        yield self._chunk({}, finish)
        if self.usage:
            yield {**self._chunk({}, None), "choices": [], "usage": R.usage(done)}

    def _chunk(self, delta: dict, finish: str | None, logprobs: dict | None = None) -> dict:
        return R.chat_chunk(self.rid, self.name, self.created, delta, finish, logprobs)
