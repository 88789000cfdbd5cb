"""The server's field policy, with the official openai client on loopback (tiny real model, ChatML).

Every field it does not implement is a 400 naming it; the model name is checked (404
``model_not_found``); logprobs, penalties and logit_bias really change what is generated or
returned, per request, also when requests share a decode batch; response_format output always
parses and validates against its schema.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import jsonschema
import openai
import pytest

from sftlab.serve import create_app
from sftlab.serve.testing import running_server

MODEL = "tiny"
MESSAGES = [{"role": "user", "content": "Name a colour."}]
SCHEMA = {
    "type": "object",
    "properties": {
        "colour": {"type": "string", "enum": ["red", "green", "blue"]},
        "count": {"type": "integer", "minimum": 0, "maximum": 99},
        "ok": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 4}, "maxItems": 2},
    },
    "required": ["colour", "count", "ok", "tags"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    app = create_app(str(tiny_model_dir), served_name=MODEL, max_tokens_limit=200, max_batch=8)
    with running_server(app) as url:
        yield {"url": url, "app": app}


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server["url"], api_key="none", max_retries=0)


def _greedy_ids(server, tokenizer, messages, n):
    import torch

    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    ids = list(ids["input_ids"])
    model = server["app"].state.worker.model
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([ids]), max_new_tokens=n, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    return out[0, len(ids) :].tolist()


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"service_tier": "flex"}, "service_tier"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"reasoning_effort": "low"}, "reasoning_effort"),
        ({"metadata": {"a": "b"}}, "metadata"),
        ({"store": True}, "store"),
        ({"extra_body": {"guided_json": {}}}, "guided_json"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
    ],
)
def test_a_field_the_server_does_not_implement_is_a_400_naming_it(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2, **kwargs)
    assert err.value.status_code == 400
    assert err.value.body["param"] == param, err.value.body


def test_unknown_completions_fields_are_refused_too(client):
    for kwargs, param in [({"suffix": "x"}, "suffix"), ({"best_of": 2}, "best_of"), ({"echo": True}, "echo")]:
        with pytest.raises(openai.BadRequestError) as err:
            client.completions.create(model=MODEL, prompt="Hi", max_tokens=2, **kwargs)
        assert err.value.body["param"] == param


def test_fields_that_change_nothing_are_accepted(client):
    reply = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=2, user="u-1", store=False
    )
    assert reply.choices[0].message.role == "assistant"
    # an assistant message sent back as the client got it (as an object, or dumped with its nulls) is fine
    message = reply.choices[0].message
    for sent_back in (message, message.model_dump(exclude_none=False)):
        again = [*MESSAGES, sent_back, {"role": "user", "content": "Ok"}]
        assert client.chat.completions.create(model=MODEL, messages=again, max_tokens=2).choices


def test_unknown_model_is_404_model_not_found_and_models_can_be_retrieved(server, client, tiny_model_dir):
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=2)
    assert err.value.body["code"] == "model_not_found" and err.value.body["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-4o", prompt="Hi", max_tokens=2)
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")
    # the reference the server was started with names it too
    reply = client.completions.create(model=str(tiny_model_dir), prompt="Hi", max_tokens=2)
    assert reply.model == MODEL


def test_chat_logprobs_are_sorted_and_the_greedy_token_is_the_top_one(client):
    reply = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=8, temperature=0, logprobs=True, top_logprobs=3
    )
    content = reply.choices[0].logprobs.content
    assert len(content) == reply.usage.completion_tokens == 8
    assert "".join(t.token for t in content) == reply.choices[0].message.content
    for entry in content:
        tops = [t.logprob for t in entry.top_logprobs]
        assert len(tops) == 3 and tops == sorted(tops, reverse=True) and tops[0] <= 0
        assert entry.top_logprobs[0].token == entry.token and entry.top_logprobs[0].logprob == entry.logprob
        assert bytes(entry.bytes).decode() == entry.token
    # streamed: the same entries, spread over the chunks
    streamed = []
    for chunk in client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=8,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
        stream=True,
    ):
        if chunk.choices and chunk.choices[0].logprobs:
            streamed.extend(chunk.choices[0].logprobs.content)
    assert [(t.token, t.logprob) for t in streamed] == [(t.token, t.logprob) for t in content]
    plain = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=8, temperature=0)
    assert (
        plain.choices[0].logprobs is None
        and plain.choices[0].message.content == reply.choices[0].message.content
    )


def test_completion_logprobs_have_the_legacy_shape(client):
    reply = client.completions.create(
        model=MODEL, prompt="The sky is", max_tokens=5, temperature=0, logprobs=2
    )
    lp = reply.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 5
    assert "".join(lp.tokens) == reply.choices[0].text
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs, strict=True):
        assert len(top) == 2 and max(top.values()) == logprob and top[token] == logprob


def test_penalties_change_the_output(client):
    base = dict(model=MODEL, messages=MESSAGES, max_tokens=12, temperature=0, logprobs=True)
    plain = client.chat.completions.create(**base)
    tokens = [t.token for t in plain.choices[0].logprobs.content]
    assert len(set(tokens)) < len(tokens)  # the untrained model repeats itself
    for penalty in ({"frequency_penalty": 2.0}, {"presence_penalty": 2.0}):
        changed = client.chat.completions.create(**base, **penalty)
        new = [t.token for t in changed.choices[0].logprobs.content]
        assert new != tokens, penalty
        assert len(set(new)) > len(set(tokens)), penalty


def test_logit_bias_bans_and_forces_tokens(server, client, tokenizer):
    greedy = _greedy_ids(server, tokenizer, MESSAGES, 6)
    banned = {str(t): -100 for t in set(greedy)}
    reply = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=6, temperature=0, logit_bias=banned
    )
    ids = tokenizer(reply.choices[0].message.content, add_special_tokens=False)["input_ids"]
    assert ids and not set(ids) & set(greedy)
    word = tokenizer(" banana", add_special_tokens=False)["input_ids"]
    forced = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=3, temperature=1.0, seed=1, logit_bias={str(word[0]): 100}
    )
    assert forced.choices[0].message.content == tokenizer.decode(word[:1]) * 3
    for bias in ({"-1": 5}, {"abc": 5}, {str(len(tokenizer) + 10**6): 5}, {"5": 101}):
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2, logit_bias=bias)
        assert err.value.body["param"] == "logit_bias"


def test_settings_stay_with_their_request_inside_one_batch(server, client, tokenizer):
    """Three requests decoded together: only the one with a bias or penalty is changed by it."""
    worker = server["app"].state.worker
    greedy = _greedy_ids(server, tokenizer, MESSAGES, 6)
    kinds = {
        "plain": {},
        "banned": {"logit_bias": {str(t): -100 for t in set(greedy)}},
        "penalised": {"frequency_penalty": 2.0},
    }
    results: dict[str, str] = {}
    before = worker.stats.largest_batch

    def send(kind: str) -> None:
        reply = client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=6, temperature=0, **kinds[kind]
        )
        results[kind] = reply.choices[0].message.content

    worker.pause()
    threads = [threading.Thread(target=send, args=(k,)) for k in kinds]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while worker.outstanding < 3:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        worker.resume()
    for t in threads:
        t.join(60)
    assert worker.stats.largest_batch >= max(before, 3) or before >= 3
    assert results["plain"] == tokenizer.decode(greedy, skip_special_tokens=True)
    assert not set(tokenizer(results["banned"], add_special_tokens=False)["input_ids"]) & set(greedy)
    assert results["penalised"] != results["plain"]


@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_output_always_parses_and_validates(client, stream):
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}}
    texts = []
    for seed in range(6):
        kwargs = dict(model=MODEL, messages=MESSAGES, max_tokens=120, temperature=1.0, seed=seed)
        if stream:
            pieces, finish = [], None
            for chunk in client.chat.completions.create(**kwargs, response_format=fmt, stream=True):
                if chunk.choices:
                    pieces.append(chunk.choices[0].delta.content or "")
                    finish = chunk.choices[0].finish_reason or finish
            text = "".join(pieces)
        else:
            reply = client.chat.completions.create(**kwargs, response_format=fmt)
            text, finish = reply.choices[0].message.content, reply.choices[0].finish_reason
        assert finish == "stop", text
        jsonschema.validate(json.loads(text), SCHEMA)
        texts.append(text)
    assert len(set(texts)) > 1  # sampled, yet always valid


def test_json_object_output_is_an_object(client, tokenizer):
    """Unbounded JSON from a random model runs to max_tokens (finish_reason "length", as OpenAI documents);
    a bias towards closing quotes and braces, applied under the grammar, lets it finish."""
    closing = {str(tokenizer(c, add_special_tokens=False)["input_ids"][0]): 100 for c in ('"', "}")}
    reply = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        max_tokens=60,
        temperature=0,
        response_format={"type": "json_object"},
        logit_bias=closing,
    )
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(reply.choices[0].message.content), dict)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "dependentSchemas": {"a": {"required": ["b"]}}},
        {"type": "string", "format": "no-such-format"},
        {"$ref": "#/definitions/missing"},
    ],
)
def test_a_schema_feature_that_cannot_be_enforced_is_a_400(client, schema):
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2, response_format=fmt)
    assert err.value.body["param"] == "response_format.json_schema.schema"


def test_nan_and_infinity_are_not_json(server):
    """Python's json would read them (and a schema holding NaN would break the grammar compiler: a 500)."""
    schema = '{"type": "number", "maximum": NaN}'
    for body in [
        '{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
        '{"messages": [{"role": "user", "content": "hi"}], "logit_bias": {"5": Infinity}}',
        '{"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_schema", '
        f'"json_schema": {{"name": "x", "schema": {schema}}}}}}}',
    ]:
        reply = httpx.post(
            f"{server['url']}/chat/completions", content=body, headers={"content-type": "application/json"}
        )
        assert reply.status_code == 400 and "not a JSON value" in reply.json()["error"]["message"], reply.text


def test_get_model_by_id_over_plain_http(server):
    root = server["url"]
    assert httpx.get(f"{root}/models/{MODEL}").json()["id"] == MODEL
    missing = httpx.get(f"{root}/models/other")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_the_clients_pydantic_parse_helper_gets_a_valid_object(client):
    """``chat.completions.parse`` sends a strict schema with ``$defs`` and titles, as most users meet it."""
    from typing import Literal

    from pydantic import BaseModel, Field

    class Inner(BaseModel):
        x: int = Field(ge=0, le=9)

    class Answer(BaseModel):
        colour: Literal["red", "blue"]
        inner: Inner
        ok: bool

    reply = client.chat.completions.parse(
        model=MODEL, messages=MESSAGES, max_tokens=60, temperature=0, response_format=Answer
    )
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(reply.choices[0].message.parsed, Answer)
