"""The OpenAI-compatible server, driven by the official openai client over loopback (tiny real model)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import httpx
import openai
import pytest

from sftlab.serve import create_app
from sftlab.serve.testing import running_server

KEY = "test-key-123"


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "requests.jsonl"
    app = create_app(
        str(tiny_model_dir),
        served_name="tiny",
        api_key=KEY,
        max_tokens_limit=64,
        max_body_bytes=20_000,
        max_batch=8,
        request_log=log,
    )
    with running_server(app) as url:
        yield {"url": url, "app": app, "log": log}


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server["url"], api_key=KEY, max_retries=0)


def _wait_outstanding(worker, n, timeout=20.0):
    deadline = time.monotonic() + timeout
    while worker.outstanding < n:
        assert time.monotonic() < deadline, f"only {worker.outstanding} of {n} requests reached the queue"
        time.sleep(0.02)


def _greedy(tokenizer, model, ids, n):
    import torch

    with torch.inference_mode():
        out = model.generate(
            torch.tensor([ids]), max_new_tokens=n, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    return out[0, len(ids) :].tolist()


def test_models_and_health(server, client):
    assert [m.id for m in client.models.list().data] == [server["app"].state.served_name]
    root = server["url"].removesuffix("/v1")
    assert httpx.get(f"{root}/health").json()["status"] == "ok"


def test_chat_completion_matches_the_model_and_counts_tokens(server, client, tokenizer):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}]
    reply = client.chat.completions.create(model="tiny", messages=messages, max_tokens=12, temperature=0)
    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    assert reply.usage.prompt_tokens == len(ids)
    worker = server["app"].state.worker
    expected = _greedy(tokenizer, worker.model, list(ids), 12)
    assert (
        reply.usage.completion_tokens == len(expected) == 12
    )  # random weights never pick <|im_end|> this early
    assert reply.choices[0].message.content == tokenizer.decode(expected, skip_special_tokens=True)
    assert reply.choices[0].finish_reason == "length"
    assert reply.object == "chat.completion"


def test_streaming_gives_the_same_text_in_openai_chunks(client):
    messages = [{"role": "user", "content": "Count to five."}]
    whole = client.chat.completions.create(model="tiny", messages=messages, max_tokens=15, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model="tiny",
            messages=messages,
            max_tokens=15,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["length"]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens == 15


def test_sse_wire_format_ends_with_done(server):
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True}
    with httpx.stream(
        "POST", f"{server['url']}/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
    ) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line for line in resp.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "chat.completion.chunk"


def test_completions_use_the_raw_prompt(server, client, tokenizer):
    reply = client.completions.create(
        model="tiny", prompt="The capital of France is", max_tokens=6, temperature=0
    )
    ids = tokenizer("The capital of France is")["input_ids"]
    expected = _greedy(tokenizer, server["app"].state.worker.model, ids, 6)
    assert reply.choices[0].text == tokenizer.decode(expected, skip_special_tokens=True)
    assert reply.usage.prompt_tokens == len(ids)
    streamed = client.completions.create(
        model="tiny", prompt="The capital of France is", max_tokens=6, stream=True, temperature=0
    )
    assert "".join(c.choices[0].text for c in streamed) == reply.choices[0].text


def test_stop_sequences_cut_the_text_in_both_modes(client):
    messages = [{"role": "user", "content": "Tell me a story."}]
    full = client.chat.completions.create(model="tiny", messages=messages, max_tokens=30, temperature=0)
    text = full.choices[0].message.content
    assert len(text) > 10
    stop = text[5:8]
    cut = text[: text.index(stop)]
    stopped = client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=30, temperature=0, stop=[stop]
    )
    assert stopped.choices[0].message.content == cut
    assert stopped.choices[0].finish_reason == "stop"
    chunks = client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=30, temperature=0, stop=stop, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == cut


def test_seeded_sampling_repeats(client):
    kwargs = dict(
        model="tiny", messages=[{"role": "user", "content": "Go"}], max_tokens=10, temperature=1.0, seed=7
    )
    first = client.chat.completions.create(**kwargs).choices[0].message.content
    assert client.chat.completions.create(**kwargs).choices[0].message.content == first


def test_api_key_is_required(server):
    bad = openai.OpenAI(base_url=server["url"], api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    resp = httpx.post(
        f"{server['url']}/chat/completions", json={"messages": [{"role": "user", "content": "x"}]}
    )
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (json.dumps({"messages": []}).encode(), "messages"),
        (json.dumps({"messages": [{"role": "wizard", "content": "x"}]}).encode(), "messages.0.role"),
        (json.dumps({"messages": [{"role": "user", "content": 5}]}).encode(), "messages.0.content"),
        (
            json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"}).encode(),
            "max_tokens",
        ),
        (
            json.dumps({"messages": [{"role": "user", "content": "x"}], "max_tokens": 65}).encode(),
            "max_tokens",
        ),
        (json.dumps({"messages": [{"role": "user", "content": "x"}], "n": 2}).encode(), "n"),
        (
            json.dumps({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}).encode(),
            "temperature",
        ),
        (json.dumps({"messages": "hello"}).encode(), "messages"),
    ],
)
def test_malformed_requests_get_openai_style_400(server, body, param):
    resp = httpx.post(
        f"{server['url']}/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_openai_client_sees_400_as_bad_request(client):
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt=["a", "b"], max_tokens=2)


def test_too_large_body_is_413(server):
    body = {"messages": [{"role": "user", "content": "x" * 30_000}]}
    resp = httpx.post(
        f"{server['url']}/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "body_too_large"


def test_fifty_concurrent_requests_all_succeed_and_are_batched(server):
    worker = server["app"].state.worker
    aclient = openai.AsyncOpenAI(base_url=server["url"], api_key=KEY, max_retries=0)
    prompts = [f"Question number {i}?" for i in range(50)]

    async def one(prompt):
        r = await aclient.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": prompt}], max_tokens=4, temperature=0
        )
        return r.choices[0].message.content, r.usage.completion_tokens

    async def main():
        tasks = [asyncio.create_task(one(p)) for p in prompts]
        # Hold the worker until all 50 are queued, so batching is certain rather than likely.
        await asyncio.to_thread(_wait_outstanding, worker, 50)
        worker.resume()
        return await asyncio.gather(*tasks)

    before = worker.stats.steps
    worker.pause()
    try:
        results = asyncio.run(main())
    finally:
        worker.resume()
    assert len(results) == 50 and all(tokens == 4 for _, tokens in results)
    assert worker.stats.largest_batch == 8
    # The first token comes from the prefill, so each request needs 3 decode steps: 150 one at a time,
    # 21 in waves of eight (ceil(50 / 8) * 3).
    assert worker.stats.steps - before == 21


def test_batched_answers_equal_answers_alone(server, client):
    worker = server["app"].state.worker
    prompts = ["Hi", "A much longer question about the weather in spring?", "Why?"]
    alone = [
        client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": p}], max_tokens=8, temperature=0
        )
        .choices[0]
        .message.content
        for p in prompts
    ]
    results: dict[int, str] = {}

    def ask(i):
        r = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": prompts[i]}], max_tokens=8, temperature=0
        )
        results[i] = r.choices[0].message.content

    worker.pause()
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    _wait_outstanding(worker, 3)
    before = worker.stats.prefills
    worker.resume()
    for t in threads:
        t.join(30)
    # the three prompts of different lengths were prefilled together, left-padded, and decoded together
    assert worker.stats.prefills - before == 1
    assert [results[i] for i in range(3)] == alone


def test_request_log_has_one_flushed_line_per_completed_request(server):
    before = server["log"].read_text().splitlines() if server["log"].exists() else []
    body = {"messages": [{"role": "user", "content": "log me"}], "max_tokens": 3}
    for _ in range(2):
        r = httpx.post(
            f"{server['url']}/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
        )
        assert r.status_code == 200
    # A refused request is not a completed one.
    httpx.post(
        f"{server['url']}/chat/completions", json={"messages": []}, headers={"Authorization": f"Bearer {KEY}"}
    )
    rows = [json.loads(line) for line in server["log"].read_text().splitlines()[len(before) :]]
    assert len(rows) == 2
    assert rows[0]["body_sha256"] == rows[1]["body_sha256"]
    assert rows[0]["id"] != rows[1]["id"]
    assert rows[0]["completion_tokens"] == 3 and rows[0]["prompt_tokens"] > 0


def test_full_queue_is_429(tiny_model_dir):
    app = create_app(str(tiny_model_dir), served_name="tiny", max_queue=2)
    with running_server(app) as url:
        worker = app.state.worker
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
        worker.pause()
        done = []
        threads = [
            threading.Thread(
                target=lambda: done.append(client.completions.create(model="tiny", prompt="a", max_tokens=2))
            )
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        _wait_outstanding(worker, 2)
        with pytest.raises(openai.RateLimitError):
            client.completions.create(model="tiny", prompt="b", max_tokens=2)
        worker.resume()
        for t in threads:
            t.join(30)
        assert len(done) == 2


def test_client_mistakes_that_used_to_be_500s(server):
    url = f"{server['url']}/chat/completions"
    auth = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    deep = httpx.post(url, content=b"[" * 10_000 + b"]" * 10_000, headers=auth)
    assert deep.status_code == 400 and "nests JSON too deeply" in deep.json()["error"]["message"]
    body = {"messages": [{"role": "user", "content": "x"}], "seed": 2**64, "max_tokens": 2}
    big_seed = httpx.post(url, json=body, headers=auth)
    assert big_seed.status_code == 400 and big_seed.json()["error"]["param"] == "seed"
    assert httpx.post(url, json={**body, "seed": 2**63 - 1}, headers=auth).status_code == 200


def test_whitespace_around_the_key_is_ignored_and_openapi_needs_it(server):
    root = server["url"].removesuffix("/v1")
    # RFC 9110: whitespace around a header value is not part of it, so a trailing space is accepted
    # (httpx refuses to send such a header, so the request goes over a plain socket)
    host, port = httpx.URL(root).host, httpx.URL(root).port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            f"GET /v1/models HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY} \r\n"
            "Connection: close\r\n\r\n".encode()
        )
        status_line = sock.makefile("rb").readline().decode()
    assert " 200 " in status_line
    near = httpx.get(f"{server['url']}/models", headers={"Authorization": f"Bearer {KEY}x"})
    assert near.status_code == 401
    assert httpx.get(f"{root}/openapi.json").status_code == 401  # the API description is behind the key
    spec = httpx.get(f"{root}/openapi.json", headers={"Authorization": f"Bearer {KEY}"})
    assert spec.status_code == 200 and "/v1/chat/completions" in spec.json()["paths"]
