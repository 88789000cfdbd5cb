"""Tools in the Ollama ``TEMPLATE``: the chat template's tool block, tool calls and tool results, in Go.

Found like the chat pieces (:func:`sftlab.export.ollama.chat_pieces`): the chat template renders marker
conversations with two probe tools, two probe calls and two probe results, and the text around their
JSON is cut out. This covers templates in the Qwen shape — tool definitions as JSON lines in the system
turn (``<tools>``), each call a ``{"name": ..., "arguments": ...}`` object (``<tool_call>``), results
grouped in one turn (``<tool_response>``) — and the checks decide: the Go template must render every
check conversation as the chat template does, else the Modelfile keeps its note that tools are left out.

What cannot match to the byte is the JSON itself: Ollama prints a tool or the call's arguments with Go's
``json.Marshal`` (compact, its own key order) where Jinja's ``tojson`` writes ``", "`` and ``": "``. The
comparison therefore reads every JSON value in both texts and compares the values
(:func:`same_up_to_json`); everything around them must be identical.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

PROBE_TOOLS = [
    {"type": "function", "function": {"name": "probe_one", "description": "first",
                                      "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "probe_two", "description": "second",
                                      "parameters": {"type": "object", "properties": {}}}},
]  # fmt: skip
_CALLS = [("probe_one", {"a": "Qx7Arg"}), ("probe_two", {})]
_U, _S, _T, _R1, _R2 = "Qx1Usr", "Qx2Sys", "Qx5Txt", "Qx8Res", "Qx9Res"


@dataclass
class ToolPieces:
    """Literal text around the tool JSON, tool calls and tool results of a chat template."""

    tools_prefix: str  # before the first tool when there is no system message
    system_tools_prefix: str  # before the system message's text when there is one
    system_tools_middle: str  # after the system message's text, before the first tool
    tool_separator: str  # before every tool's JSON
    tools_suffix: str  # after the last tool
    call_open: str  # before the first call of an assistant message without text
    call_open_after_text: str  # before the first call after the message's text
    between_calls: str  # from the end of one call to the start of the next
    call_close: str  # after the last call
    results_open: str  # before the first of consecutive tool results
    between_results: str  # from one result's text to the next
    results_close: str  # after the last of consecutive tool results


def _dump(value) -> str:
    """Jinja's ``tojson`` as transformers registers it."""
    return json.dumps(value, ensure_ascii=False)


def _call_message(content: str, calls) -> dict:
    return {
        "role": "assistant",
        "content": content,
        "tool_calls": [{"type": "function", "function": {"name": n, "arguments": a}} for n, a in calls],
    }


def tool_pieces(tokenizer, p, render) -> ToolPieces | None:
    """The tool pieces of ``tokenizer``'s chat template (``p``: its chat pieces), or ``None`` if not that shape."""
    try:
        return _tool_pieces(tokenizer, p, render)
    except (
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
    ):  # a marker missing: not a template we can express
        return None
    except Exception:  # the template itself raised (jinja) on a shape it does not accept
        return None


def _tool_pieces(tokenizer, p, render) -> ToolPieces | None:
    def text(messages, gen):
        return render(tokenizer, messages, gen, PROBE_TOOLS)

    j1, j2 = (_dump(t) for t in PROBE_TOOLS)
    user = p.user_prefix + _U
    plain = text([{"role": "user", "content": _U}], False)
    head = plain[len(p.bos) : plain.rindex(user)]
    sep = head[head.index(j1) + len(j1) : head.index(j2)]
    before = head[: head.index(j1)]
    if not before.endswith(sep) or not sep:
        return None
    with_system = text([{"role": "system", "content": _S}, {"role": "user", "content": _U}], False)
    shead = with_system[len(p.bos) : with_system.rindex(user)]
    if shead[shead.index(j2) + len(j2) :] != head[head.index(j2) + len(j2) :]:
        return None
    calls = [{"role": "user", "content": _U}, _call_message("", _CALLS)]
    results = [{"role": "tool", "content": _R1}, {"role": "tool", "content": _R2}]
    turn = text(calls + results, True)
    k1, k2 = (_dump({"name": n, "arguments": a}) for n, a in _CALLS)
    start = turn.rindex(user + p.user_suffix + p.assistant_prefix) + len(
        user + p.user_suffix + p.assistant_prefix
    )
    after_calls = turn[turn.index(k2) + len(k2) : turn.index(_R1)]
    if p.assistant_suffix not in after_calls or not turn.endswith(p.generation_prompt):
        return None
    close, _, results_open = after_calls.partition(p.assistant_suffix)
    with_text = text([calls[0], _call_message(_T, _CALLS[:1]), results[0]], True)
    return ToolPieces(
        tools_prefix=before[: -len(sep)],
        system_tools_prefix=shead[: shead.index(_S)],
        system_tools_middle=shead[shead.index(_S) + len(_S) : shead.index(j1) - len(sep)],
        tool_separator=sep,
        tools_suffix=head[head.index(j2) + len(j2) :],
        call_open=turn[start : turn.index(k1)],
        call_open_after_text=with_text[with_text.index(_T) + len(_T) : with_text.index(k1)],
        between_calls=turn[turn.index(k1) + len(k1) : turn.index(k2)],
        call_close=close,
        results_open=results_open,
        between_results=turn[turn.index(_R1) + len(_R1) : turn.index(_R2)],
        results_close=turn[turn.index(_R2) + len(_R2) : len(turn) - len(p.generation_prompt)],
    )


def same_up_to_json(a: str, b: str) -> bool:
    """``a`` and ``b`` are equal once every JSON object or array in them is read as a value.

    >>> same_up_to_json('<t>{"a": 1, "b": [2]}</t>', '<t>{"b":[2],"a":1}</t>')
    True
    >>> same_up_to_json('{"a": 1}', '{"a": 2}')
    False
    """
    return _values(a) == _values(b)


def _values(text: str) -> list:
    """The text as a list of literal runs and parsed JSON values."""
    decoder, out, run, i = json.JSONDecoder(), [], [], 0
    while i < len(text):
        if text[i] in "{[":
            try:
                value, end = decoder.raw_decode(text, i)
            except ValueError:
                value, end = None, i
            if end > i:
                out += ["".join(run), ("json", json.dumps(value, sort_keys=True))]
                run, i = [], end
                continue
        run.append(text[i])
        i += 1
    return [*out, "".join(run)]


_WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather now in a city (°C)",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
            "required": ["city"],
        },
    },
}
_TIME = {"type": "function", "function": {"name": "get_time", "description": "Time <now>", "parameters": {}}}


def _call(name: str, arguments: dict) -> dict:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


CHECK_TOOL_CONVERSATIONS = [
    ([{"role": "user", "content": "Weather in Paris?"}], [_WEATHER]),
    (
        [
            {"role": "system", "content": "Be brief.\nUse tools."},
            {"role": "user", "content": "Weather in Lyon?"},
            {"role": "assistant", "content": "", "tool_calls": [_call("get_weather", {"city": "Lyon"})]},
            {"role": "tool", "content": '{"temp": 18}'},
        ],
        [_WEATHER, _TIME],
    ),
    (
        [
            {"role": "user", "content": "Weather and time in Köln?"},
            {
                "role": "assistant",
                "content": "Checking both.",
                "tool_calls": [_call("get_weather", {"city": "Köln", "unit": "c"}), _call("get_time", {})],
            },
            {"role": "tool", "content": "12 °C"},
            {"role": "tool", "content": "10:42"},
            {"role": "assistant", "content": "12 °C at 10:42."},
            {"role": "user", "content": "Thanks!"},
        ],
        [_WEATHER, _TIME],
    ),
]
"""Conversations with tools (ending as at inference) the tool-aware template must render, up to JSON spacing."""
