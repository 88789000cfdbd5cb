"""Tool calling through the official openai client: Qwen3's real template over a tiny random model.

A random model never calls a tool by itself, so the end-to-end tests force the call with
``tool_choice`` (a grammar: the reply is one call whose arguments match the schema) and check
that the server parses it back; the parser is also tested on real template output.
"""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from sftlab.serve import create_app
from sftlab.serve.testing import running_server
from sftlab.serve.tools import ToolStream, parse_calls, syntax_of

MODEL = "tiny-qwen"
WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Oslo", "Lima", "Pune"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "days"],
    "additionalProperties": False,
}
TOOLS = [
    {
        "type": "function",
        "function": {"name": "get_weather", "description": "Forecast.", "parameters": WEATHER},
    },
    {
        "type": "function",
        "function": {
            "name": "add",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "integer", "maximum": 9, "minimum": 0}},
                "required": ["a"],
                "additionalProperties": False,
            },
        },
    },
]
ASK = [{"role": "user", "content": "What is the weather in Oslo?"}]


def _tiny_qwen3(tokenizer):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        tie_word_embeddings=True,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    return Qwen3ForCausalLM(config).float()


@pytest.fixture(scope="module")
def server(qwen3_tokenizer):
    app = create_app(model=_tiny_qwen3(qwen3_tokenizer), tokenizer=qwen3_tokenizer, served_name=MODEL)
    with running_server(app) as url:
        yield {"url": url, "app": app}


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server["url"], api_key="none", max_retries=0)


def _check_call(call, name="get_weather", schema=WEATHER):
    assert call.type == "function" and call.id.startswith("call_") and call.function.name == name
    jsonschema.validate(json.loads(call.function.arguments), schema)


def test_the_call_syntax_is_read_from_the_template(qwen3_tokenizer, llama3_real_tokenizer, tokenizer):
    assert syntax_of(qwen3_tokenizer) == "hermes"
    assert syntax_of(llama3_real_tokenizer) == "json"
    assert syntax_of(tokenizer) is None  # SmolLM2's ChatML template shows no tools


@pytest.mark.parametrize("fixture", ["qwen3_tokenizer", "llama3_real_tokenizer"])
def test_the_parser_reads_calls_as_each_template_renders_them(request, fixture):
    """Render an assistant turn with two calls in the model's own template and parse its text back."""
    tok = request.getfixturevalue(fixture)
    calls = [
        {
            "id": "c1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": {"city": "Oslo", "days": 2}},
        },
        {"id": "c2", "type": "function", "function": {"name": "add", "arguments": {"a": 3}}},
    ]
    if fixture == "llama3_real_tokenizer":
        calls = calls[:1]  # Llama 3's JSON form holds one call
    convo = [*ASK, {"role": "assistant", "content": "", "tool_calls": calls}]
    prompt = tok.apply_chat_template(ASK, tools=TOOLS, add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template(convo, tools=TOOLS, tokenize=False)
    assert full.startswith(prompt)
    reply = full[len(prompt) :]
    for end in ("<|im_end|>", "<|eot_id|>"):
        reply = reply.split(end)[0]
    content, parsed = parse_calls(reply, syntax_of(tok))
    assert content is None
    assert [(p.name, json.loads(p.arguments)) for p in parsed] == [
        (c["function"]["name"], c["function"]["arguments"]) for c in calls
    ]


def test_text_around_calls_and_broken_calls():
    text = 'Let me look.\n<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_call>'
    content, calls = parse_calls(text, "hermes")
    assert content == "Let me look." and calls[0].name == "add" and json.loads(calls[0].arguments) == {"a": 1}
    broken = '<tool_call>\n{"name": "add", "argu'
    assert parse_calls(broken, "hermes") == (broken, [])
    assert parse_calls("Just text.", "json") == ("Just text.", [])
    answer = '{"name": "Ada", "parameters": {"age": 36}}'  # JSON output, not a call to an offered tool
    assert parse_calls(answer, "json", {"get_weather"}) == (answer, [])
    assert parse_calls(answer, "json", {"Ada"})[1][0].name == "Ada"
    assert parse_calls(text, "hermes", {"get_weather"}) == (text, [])


def test_a_stream_sends_text_and_holds_back_a_call():
    stream = ToolStream("hermes")
    out = [stream.feed(p) for p in ["Hel", "lo <tool", '_call>\n{"name"', ': "add"}', "\n</tool_call>"]]
    assert "".join(out) == "Hello "
    plain = ToolStream("hermes")
    assert "".join(plain.feed(p) for p in ["a <b", "> c"]) == "a <b> c"
    llama = ToolStream("json")
    assert llama.feed("  ") == "" and llama.feed('{"name"') == ""
    assert ToolStream("json").feed("Sure") == "Sure"


def test_a_named_tool_choice_is_enforced_and_parsed(client):
    for seed in range(3):
        reply = client.chat.completions.create(
            model=MODEL,
            messages=ASK,
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            max_tokens=60,
            temperature=1.0,
            seed=seed,
        )
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls", choice.message
        assert choice.message.content is None and len(choice.message.tool_calls) == 1
        _check_call(choice.message.tool_calls[0])


def test_required_picks_one_of_the_tools(client):
    reply = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=60, temperature=0
    )
    (call,) = reply.choices[0].message.tool_calls
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    _check_call(call, call.function.name, schemas[call.function.name])


def test_a_forced_call_streams_in_openais_delta_shape(client):
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=ASK,
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            max_tokens=60,
            temperature=0,
            stream=True,
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    calls = [tc for d in deltas for tc in (d.tool_calls or [])]
    assert len(calls) == 1 and calls[0].index == 0
    _check_call(calls[0])
    assert not "".join(d.content or "" for d in deltas)  # the call's text is not sent as content
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_parallel_tool_calls_false_ends_at_the_first_call(server, client):
    """The first call's closing tag ends generation: a model that would go on to a second call cannot."""
    from sftlab.serve.schemas import ChatCompletionRequest
    from sftlab.serve.tools import CLOSE, extra_stops

    one = ChatCompletionRequest.model_validate(
        {"messages": ASK, "tools": TOOLS, "parallel_tool_calls": False}
    )
    assert extra_stops(one, "hermes") == (CLOSE,) and extra_stops(one, "json") == ()
    text = '<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n'  # as cut by the stop: no closing tag
    assert [c.name for c in parse_calls(text, "hermes")[1]] == ["add"]
    reply = client.chat.completions.create(
        model=MODEL,
        messages=ASK,
        tools=TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=60,
    )
    assert len(reply.choices[0].message.tool_calls) == 1


def test_tool_results_go_into_the_template(client, qwen3_tokenizer):
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo", "days": 1}'},
    }
    messages = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
    ]
    reply = client.chat.completions.create(
        model=MODEL, messages=messages, tools=TOOLS, max_tokens=4, temperature=0
    )
    as_template = [
        *ASK,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {**call, "function": {"name": "get_weather", "arguments": {"city": "Oslo", "days": 1}}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"},
    ]
    text = qwen3_tokenizer.apply_chat_template(
        as_template, tools=TOOLS, add_generation_prompt=True, tokenize=False
    )
    assert "<tool_response>\nSunny, 21 C\n</tool_response>" in text and '"city": "Oslo"' in text
    ids = qwen3_tokenizer.apply_chat_template(
        as_template, tools=TOOLS, add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    assert reply.usage.prompt_tokens == len(ids)


def test_auto_lets_the_model_answer_in_text_streamed_alike(client):
    kwargs = dict(model=MODEL, messages=ASK, tools=TOOLS, max_tokens=8, temperature=0)
    whole = client.chat.completions.create(**kwargs)
    assert whole.choices[0].message.tool_calls is None and whole.choices[0].finish_reason == "length"
    pieces = [
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(**kwargs, stream=True)
        if c.choices
    ]
    assert "".join(pieces) == whole.choices[0].message.content


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tool_choice": "required", "response_format": {"type": "json_object"}}, "response_format"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools.0.function.name"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
            "tools.0.function.parameters",
        ),
        (
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"type": "object", "dependentSchemas": {}}},
                    }
                ],
                "tool_choice": "required",
            },
            "tools",
        ),
    ],
)
def test_tool_requests_the_server_cannot_honour_are_400s(client, kwargs, param):
    body = {"tools": TOOLS, **kwargs}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=2, **body)
    assert err.value.body["param"] == param, err.value.body


def test_a_template_without_tools_refuses_them(tiny_model_dir):
    with running_server(tiny_model_dir, served_name="t") as url:
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="t", messages=ASK, tools=TOOLS, max_tokens=2)
        assert err.value.body["param"] == "tools" and "does not support tools" in err.value.body["message"]
        tool_turn = [*ASK, {"role": "tool", "tool_call_id": "x", "content": "result"}]
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="t", messages=tool_turn, max_tokens=2)
        assert err.value.body["param"] == "messages"


def test_a_llama3_json_call_is_forced_and_parsed(llama3_real_tokenizer):
    from sftlab.testing import tiny_llama

    model = tiny_llama(llama3_real_tokenizer)
    app = create_app(model=model, tokenizer=llama3_real_tokenizer, served_name="tiny-llama")
    with running_server(app) as url:
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
        reply = client.chat.completions.create(
            model="tiny-llama",
            messages=ASK,
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            max_tokens=60,
            temperature=0,
        )
    assert reply.choices[0].finish_reason == "tool_calls"
    _check_call(reply.choices[0].message.tool_calls[0])
