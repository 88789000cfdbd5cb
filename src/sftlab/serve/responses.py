"""OpenAI response bodies and stream chunks, built from a :class:`Completion`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from sftlab.serve.logits import TokenLogprob
from sftlab.serve.worker import Completion

TokenBytes = Callable[[int], bytes]
"""A token id's bytes (a token may hold part of a UTF-8 character, so bytes, not text)."""


def usage(done: Completion) -> dict[str, int]:
    return {
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "total_tokens": done.prompt_tokens + done.completion_tokens,
    }


def chat_completion(
    rid: str, model: str, done: Completion, message: dict, finish: str, logprobs: dict | None
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": logprobs, "finish_reason": finish}],
        "usage": usage(done),
    }


def text_completion(rid: str, model: str, done: Completion, logprobs: dict | None) -> dict[str, Any]:
    choice = {"index": 0, "text": done.text, "logprobs": logprobs, "finish_reason": done.finish_reason}
    return {
        "id": rid,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [choice],
        "usage": usage(done),
    }


def chat_chunk(
    rid: str, model: str, created: int, delta: dict, finish: str | None, logprobs: dict | None = None
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
    }


def text_chunk(
    rid: str, model: str, created: int, text: str, finish: str | None, logprobs: dict | None = None
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish}],
    }


def _token(token: int, logprob: float, token_bytes: TokenBytes) -> dict[str, Any]:
    raw = token_bytes(token)
    return {"token": raw.decode("utf-8", errors="replace"), "logprob": logprob, "bytes": list(raw)}


def chat_logprobs(entries: list[TokenLogprob], token_bytes: TokenBytes) -> dict[str, Any]:
    """Chat's ``logprobs``: per token its text, bytes, log-probability and the top alternatives."""
    content = []
    for lp in entries:
        entry = _token(lp.token, lp.logprob, token_bytes)
        entry["top_logprobs"] = [_token(t, v, token_bytes) for t, v in lp.top]
        content.append(entry)
    return {"content": content, "refusal": None}


def text_logprobs(entries: list[TokenLogprob], token_bytes: TokenBytes, offset: int = 0) -> dict[str, Any]:
    """The legacy completions ``logprobs``: parallel lists, ``top_logprobs`` as token → logprob maps."""
    tokens, offsets = [], []
    for lp in entries:
        offsets.append(offset)
        text = token_bytes(lp.token).decode("utf-8", errors="replace")
        tokens.append(text)
        offset += len(text)
    return {
        "tokens": tokens,
        "token_logprobs": [lp.logprob for lp in entries],
        "top_logprobs": [
            {token_bytes(t).decode("utf-8", errors="replace"): v for t, v in lp.top} for lp in entries
        ],
        "text_offset": offsets,
    }


def sse(obj: dict[str, Any] | str) -> str:
    """One server-sent event: ``data: <json>`` and a blank line."""
    data = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
    return f"data: {data}\n\n"
