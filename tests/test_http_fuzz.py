"""1,200 malformed and odd HTTP requests against a real server on loopback: never a 5xx, healthy after.

Requests are drawn from a seeded generator: bodies that are not JSON or not objects,
every request field given a wrong type or an extreme value, deep nesting, odd Unicode,
unknown paths and methods, bad auth headers, wrong content types. Valid requests ask
for at most 3 tokens so the run stays short.
"""

from __future__ import annotations

import json
import random

import httpx
import pytest

from sftlab.serve.testing import running_server

KEY = "fuzz-key"
N_REQUESTS = 1200
ODD_VALUES = [
    None,
    True,
    0,
    -1,
    1.5,
    float("1e308"),
    2**64,
    -(2**70),
    "",
    "x" * 5000,
    "\u0000\ud7ff\ufffd",
    "🙂" * 50,
    [],
    [None],
    {},
    {"a": {"b": {"c": []}}},
    "NaN",
    float("nan"),
    [1, "2", None],
    {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"pattern": "(("}}}},
    },
    {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {"type": "array", "items": {"$ref": "#/nope"}}},
    },
    [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "minProperties": "x"}}}],
    {"type": "function", "function": {"name": "f"}},
    {"5": 100, "x": 1},
]
FIELDS = [
    "model",
    "messages",
    "prompt",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "seed",
    "stream",
    "stream_options",
    "echo",
    "tools",
    "response_format",
    "logprobs",
    "top_logprobs",
    "tool_choice",
    "parallel_tool_calls",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
    "store",
    "suffix",
]


def _valid_chat(rng):
    return {
        "messages": [{"role": "user", "content": rng.choice(["hi", "2+2?", "日本語で", ""])}],
        "max_tokens": rng.randint(1, 3),
    }


def _body(rng: random.Random) -> tuple[bytes, str]:
    """A request body and its content type."""
    kind = rng.randrange(10)
    if kind >= 8:  # a well-formed request now and then, so the odd ones meet a busy server
        return json.dumps(_valid_chat(rng)).encode(), "application/json"
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))), "application/json"
    if kind == 1:
        depth = rng.choice([10, 1_000, 50_000])
        return (b"[" * depth + b"]" * depth)[:200_000], "application/json"
    if kind == 2:
        return json.dumps(rng.choice(ODD_VALUES)).encode(), "application/json"
    body = _valid_chat(rng) if rng.random() < 0.7 else {"prompt": "Say hi", "max_tokens": 2}
    for _ in range(rng.randrange(1, 4)):
        body[rng.choice(FIELDS)] = rng.choice(ODD_VALUES)
    if kind == 3 and "messages" in body and isinstance(body["messages"], list) and body["messages"]:
        message = body["messages"][0]
        if isinstance(message, dict):
            message[rng.choice(["role", "content", "name", "tool_calls"])] = rng.choice(ODD_VALUES)
    text = json.dumps(body, allow_nan=True)
    content_type = "application/json" if kind != 4 else rng.choice(["text/plain", "", "application/xml"])
    return text.encode(), content_type


def _request(rng: random.Random) -> dict:
    path = rng.choice(
        ["/v1/chat/completions"] * 4 + ["/v1/completions"] * 2 + ["/v1/models", "/v1/nope", "/health", "/"]
    )
    method = rng.choice(["POST"] * 12 + ["GET", "PUT", "DELETE"])
    auth = rng.choice([f"Bearer {KEY}"] * 6 + ["", "Bearer", f"bearer {KEY}", "Basic abc", f"Bearer {KEY}x"])
    body, content_type = _body(rng)
    headers = {"Authorization": auth} if auth else {}
    if content_type:
        headers["Content-Type"] = content_type
    return {
        "method": method,
        "url": path,
        "content": body if method in ("POST", "PUT") else None,
        "headers": headers,
    }


@pytest.fixture(scope="module")
def base(tiny_model_dir):
    with running_server(
        tiny_model_dir, api_key=KEY, max_tokens_limit=3, max_body_bytes=100_000, max_queue=64
    ) as url:
        yield url.removesuffix("/v1")


def test_no_request_gets_a_5xx_and_the_server_stays_healthy(base):
    rng = random.Random(1234)
    statuses: dict[int, int] = {}
    failures = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for i in range(N_REQUESTS):
            spec = _request(rng)
            resp = client.request(**spec)
            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
            if resp.status_code >= 500:
                failures.append(
                    (i, spec["method"], spec["url"], (spec["content"] or b"")[:120], resp.text[:200])
                )
            elif resp.status_code >= 400 and resp.headers.get("content-type", "").startswith(
                "application/json"
            ):
                assert "error" in resp.json(), resp.text[:200]  # OpenAI's error shape
        assert not failures, failures[:5]
        assert sum(statuses.values()) == N_REQUESTS
        assert statuses.get(200, 0) > 50 and sum(v for k, v in statuses.items() if 400 <= k < 500) > 600
        health = client.get("/health").json()
        assert health["status"] == "ok" and health["queued"] == 0
        ok = client.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["role"] == "assistant"
