"""Continuous batching, cancellation and the time limit, over loopback with the official client (tiny real model).

Issue 19: clients that gave up kept the worker generating for nobody, and short requests waited
for the longest request of their batch. Assertions are on the worker's state and on what the
clients received, never on wall-clock time (waits have generous sanity bounds only).
"""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import httpx
import openai
import pytest

from sftlab.serve import create_app
from sftlab.serve.testing import running_server

LONG = 1900
"""A max_tokens that takes the tiny model many seconds (its context is 2048 tokens)."""


@pytest.fixture
def fresh(tiny_model_dir, tmp_path):
    """A server of its own, so the worker's counters and the request log start empty."""
    log = tmp_path / "requests.jsonl"
    app = create_app(
        str(tiny_model_dir), served_name="tiny", max_tokens_limit=LONG, max_batch=8, request_log=log
    )
    with running_server(app) as url:
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
        yield SimpleNamespace(url=url, worker=app.state.worker, log=log, client=client)


def _wait(predicate, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def _logged(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _greedy_text(tokenizer, model, prompt: str | list[int], n: int) -> str:
    """What ``generate`` makes of ``prompt`` (text, or token ids) alone, greedily."""
    import torch

    ids = tokenizer(prompt)["input_ids"] if isinstance(prompt, str) else prompt
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([ids]), max_new_tokens=n, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    return tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)


def _in_thread(fn, *args) -> threading.Thread:
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    return thread


def test_requests_whose_clients_gave_up_leave_the_worker(fresh):
    outcomes: list[str] = []

    def give_up(i: int) -> None:
        body = {"prompt": f"Once upon a time {i}", "max_tokens": LONG, "temperature": 0}
        try:
            httpx.post(f"{fresh.url}/completions", json=body, timeout=1.0)
            outcomes.append("answered")
        except httpx.ReadTimeout:
            outcomes.append("gave up")

    for thread in [_in_thread(give_up, i) for i in range(3)]:
        thread.join(60)
    assert outcomes == ["gave up"] * 3
    _wait(lambda: fresh.worker.outstanding == 0, "the worker to drop the three requests")
    # Nothing was completed for them: before, each generated all its tokens and was logged.
    assert _logged(fresh.log) == []
    assert fresh.worker.stats.finished["cancelled"] == 3
    assert fresh.worker.stats.tokens < 3 * LONG
    assert fresh.worker.active == 0


def test_a_stream_whose_client_left_is_cancelled(fresh):
    body = {"prompt": "Once upon a time", "max_tokens": LONG, "temperature": 0, "stream": True}
    with httpx.stream("POST", f"{fresh.url}/completions", json=body, timeout=60) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: "):
                break  # the first piece arrived, so it is generating; now leave
    _wait(lambda: fresh.worker.outstanding == 0, "the worker to drop the stream")
    assert _logged(fresh.log) == []
    assert fresh.worker.stats.finished["cancelled"] == 1
    assert fresh.worker.stats.tokens < LONG


def test_short_requests_are_answered_while_a_long_one_generates(fresh, tokenizer):
    worker, client = fresh.worker, fresh.client
    long_prompt, long_tokens = "Tell me everything about the sea.", 400
    answers: dict = {}
    long_done = threading.Event()
    answered_during_long: list[bool] = []

    def ask_long() -> None:
        answers["long"] = client.completions.create(
            model="tiny", prompt=long_prompt, max_tokens=long_tokens, temperature=0
        )
        long_done.set()

    def ask_short(i: int) -> None:
        reply = client.completions.create(model="tiny", prompt=f"Question {i}?", max_tokens=2, temperature=0)
        answered_during_long.append(not long_done.is_set())
        answers[i] = reply

    worker.pause()  # all eight arrive before the first step, as in the report
    threads = [_in_thread(ask_long)] + [_in_thread(ask_short, i) for i in range(7)]
    _wait(lambda: worker.outstanding == 8, "eight queued requests")
    worker.resume()
    for thread in threads[1:]:
        thread.join(120)
    # Each short answer arrived while the long request was still generating (before: all eight together).
    assert answered_during_long == [True] * 7
    threads[0].join(120)
    assert worker.stats.largest_batch == 8  # they did share the batch
    assert answers["long"].usage.completion_tokens == long_tokens
    model = worker.model
    assert answers["long"].choices[0].text == _greedy_text(tokenizer, model, long_prompt, long_tokens)
    for i in range(7):
        assert answers[i].usage.completion_tokens == 2
        assert answers[i].choices[0].text == _greedy_text(tokenizer, model, f"Question {i}?", 2)


def test_a_request_joins_a_batch_that_is_already_generating(fresh, tokenizer):
    worker, client = fresh.worker, fresh.client
    long_done = threading.Event()

    def ask_long() -> None:
        client.completions.create(model="tiny", prompt="A long story:", max_tokens=600, temperature=0)
        long_done.set()

    thread = _in_thread(ask_long)
    _wait(lambda: worker.stats.tokens > 0, "the long request to start generating")
    messages = [{"role": "user", "content": "Hi there!"}]
    reply = client.chat.completions.create(model="tiny", messages=messages, max_tokens=5, temperature=0)
    assert not long_done.is_set()  # answered without waiting for the long one
    assert worker.stats.prefills == 2 and worker.stats.largest_batch == 2  # prefilled alone, decoded together
    prompt = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    assert reply.choices[0].message.content == _greedy_text(tokenizer, worker.model, prompt, 5)
    thread.join(120)


def test_seeded_and_streamed_requests_share_the_batch_and_keep_their_answers(fresh):
    worker, client = fresh.worker, fresh.client
    seeded = dict(model="tiny", prompt="Go", max_tokens=12, temperature=1.0, seed=7)
    alone = client.completions.create(**seeded).choices[0].text
    streamed_alone = "".join(c.choices[0].text for c in client.completions.create(**seeded, stream=True))
    long_done = threading.Event()

    def ask_long() -> None:
        client.completions.create(model="tiny", prompt="Keep going", max_tokens=600, temperature=0)
        long_done.set()

    thread = _in_thread(ask_long)
    _wait(lambda: worker.active == 1, "the long request to start generating")
    busy = client.completions.create(**seeded).choices[0].text
    streamed_busy = "".join(c.choices[0].text for c in client.completions.create(**seeded, stream=True))
    assert not long_done.is_set()
    assert worker.stats.largest_batch == 2
    assert busy == alone == streamed_alone == streamed_busy
    thread.join(120)


def test_the_time_limit_cuts_a_running_request_and_refuses_a_queued_one(tiny_model_dir):
    app = create_app(str(tiny_model_dir), served_name="tiny", max_tokens_limit=LONG, request_timeout=1.0)
    with running_server(app) as url:
        worker = app.state.worker
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
        reply = client.completions.create(model="tiny", prompt="Once", max_tokens=LONG, temperature=0)
        # cut short like a max_tokens cut: finish_reason "length" and the tokens made so far
        assert reply.choices[0].finish_reason == "length"
        assert 0 < reply.usage.completion_tokens < LONG
        chunks = list(
            client.completions.create(
                model="tiny",
                prompt="Once",
                max_tokens=LONG,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
            "length"
        ]
        assert 0 < chunks[-1].usage.completion_tokens < LONG
        assert worker.stats.finished["timeout"] == 2

        errors: list[openai.APIStatusError] = []

        def queued() -> None:
            try:
                client.completions.create(model="tiny", prompt="late", max_tokens=2)
            except openai.APIStatusError as err:
                errors.append(err)

        worker.pause()
        thread = _in_thread(queued)
        _wait(lambda: worker.outstanding == 1, "the queued request")
        time.sleep(1.2)  # past its time limit while still queued
        worker.resume()
        thread.join(60)
        assert [e.status_code for e in errors] == [503]
        assert errors[0].code == "request_timeout"
