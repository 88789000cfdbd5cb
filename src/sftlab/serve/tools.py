"""Tool calling: tools rendered by the model's chat template, the model's call syntax parsed back.

Two call syntaxes are known, told apart by the chat template's own text:

- ``hermes`` (Qwen 2.5/3, Hermes, many ChatML models): ``<tool_call>{"name", "arguments"}</tool_call>``,
  one block per call, optionally after some text;
- ``json`` (Llama 3.x): the whole reply is ``{"name": ..., "parameters": {...}}``.

A template that renders nothing for ``tools``, or whose syntax is neither, is a 400: the server
cannot offer tools the model was never shown or parse calls it cannot read. ``tool_choice`` of
``required`` or a named function is enforced with a grammar (``serve/constrain.py``): the reply
is exactly one call, to one of the offered functions (or the named one), whose arguments match
that function's ``parameters`` schema.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from sftlab.serve.constrain import JSON_OPTIONS
from sftlab.serve.schemas import ApiError, ChatCompletionRequest

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_HERMES = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_EMPTY_THINK = re.compile(r"^\s*<think>\s*</think>")
"""The empty reasoning block Qwen3 writes before its calls when it does not think: not content."""
_PROBE = [{"role": "user", "content": "hi"}]
_PROBE_TOOL = {"type": "function", "function": {"name": "probe_tool_xyz", "parameters": {"type": "object"}}}


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: str
    """The arguments as a JSON string, as OpenAI sends them."""


def syntax_of(tokenizer) -> str | None:
    """``hermes``, ``json`` or None (the template shows no tools, or in a syntax not parsed here)."""
    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str):
        return None
    try:
        plain = tokenizer.apply_chat_template(_PROBE, add_generation_prompt=True, tokenize=False)
        shown = tokenizer.apply_chat_template(
            _PROBE, tools=[_PROBE_TOOL], add_generation_prompt=True, tokenize=False
        )
    except Exception:  # a template that fails on tools does not support them
        return None
    if plain == shown or "probe_tool_xyz" not in shown:
        return None
    if OPEN in template:
        return "hermes"
    if "parameters" in template:
        return "json"
    return None


def require_syntax(tokenizer, req: ChatCompletionRequest) -> str | None:
    """The call syntax when the request uses tools (tools, tool calls or tool results), else None."""
    uses = bool(req.tools) or any(m.role == "tool" or m.tool_calls for m in req.messages)
    if not uses:
        if req.tool_choice not in (None, "none") or req.parallel_tool_calls is not None:
            param = "tool_choice" if req.tool_choice not in (None, "none") else "parallel_tool_calls"
            raise ApiError(400, f"{param} needs tools", param=param)
        return None
    for i, tool in enumerate(req.tools or []):
        params = tool.function.parameters
        if params is not None and params.get("type") != "object":
            raise ApiError(
                400,
                f"the parameters of function '{tool.function.name}' must be a JSON schema of type 'object'",
                param=f"tools.{i}.function.parameters",
            )
    syntax = syntax_of(tokenizer)
    if syntax is None:
        raise ApiError(
            400,
            "this model's chat template does not support tools (it renders no tools, or calls in a syntax "
            "this server cannot parse: <tool_call> blocks or Llama 3 JSON)",
            param="tools" if req.tools else "messages",
        )
    return syntax


def extra_stops(req: ChatCompletionRequest, syntax: str | None) -> tuple[str, ...]:
    """``parallel_tool_calls: false``: generation ends with the first call's closing tag (one call at most)."""
    if req.parallel_tool_calls is False and syntax == "hermes" and req.tool_choice != "none":
        return (CLOSE,)
    return ()  # Llama's JSON form and a forced call hold one call anyway


def template_messages(req: ChatCompletionRequest) -> list[dict[str, Any]]:
    """The messages as chat templates take them (tool-call arguments as objects, tool results with their id)."""
    out = []
    for i, m in enumerate(req.messages):
        if m.tool_calls and m.role != "assistant":
            raise ApiError(400, "only assistant messages carry tool_calls", param=f"messages.{i}.tool_calls")
        if (m.tool_call_id is not None) != (m.role == "tool"):
            raise ApiError(
                400,
                "a tool message needs tool_call_id (and only it has one)",
                param=f"messages.{i}.tool_call_id",
            )
        msg: dict[str, Any] = {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
        if m.name is not None:
            msg["name"] = m.name
        if m.tool_call_id is not None:
            msg["tool_call_id"] = m.tool_call_id
        if m.tool_calls:
            msg["tool_calls"] = [
                _call_in(call, f"messages.{i}.tool_calls.{j}") for j, call in enumerate(m.tool_calls)
            ]
        out.append(msg)
    return out


def _call_in(call, param: str) -> dict[str, Any]:
    try:
        arguments = json.loads(call.function.arguments) if call.function.arguments.strip() else {}
    except json.JSONDecodeError as err:
        raise ApiError(
            400, f"the arguments are not JSON: {err}", param=f"{param}.function.arguments"
        ) from None
    fn = {"name": call.function.name, "arguments": arguments}
    return {"id": call.id, "type": "function", "function": fn}


def tool_dicts(req: ChatCompletionRequest) -> list[dict[str, Any]] | None:
    if not req.tools:
        return None
    return [tool.model_dump(exclude_none=True, by_alias=True) for tool in req.tools]


def forced_grammar(req: ChatCompletionRequest, syntax: str, tokenizer) -> str | None:
    """The Lark grammar of one call when ``tool_choice`` demands one (``required`` or a named function)."""
    choice = req.tool_choice
    if choice in (None, "auto", "none") or not req.tools:
        return None
    tools = [t.function for t in req.tools]
    if not isinstance(choice, str):
        tools = [f for f in tools if f.name == choice.function.name]
        if not tools:
            raise ApiError(
                400,
                f"tool_choice names '{choice.function.name}', which is not among tools",
                param="tool_choice",
            )
    key = "arguments" if syntax == "hermes" else "parameters"
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": f.name},
                key: f.parameters or {"type": "object", "properties": {}},
            },
            "required": ["name", key],
            "additionalProperties": False,
        }
        for f in tools
    ]
    schema = options[0] if len(options) == 1 else {"anyOf": options}
    schema = json.dumps({**schema, "x-guidance": JSON_OPTIONS})  # compact JSON, as for response_format
    if syntax == "hermes":
        return f'start: {_lark_literal(tokenizer, OPEN)} "\\n" call "\\n" {_lark_literal(tokenizer, CLOSE)}\ncall: %json {schema}\n'
    return f"start: %json {schema}\n"


def _lark_literal(tokenizer, marker: str) -> str:
    """``marker`` in Lark: the token itself when the vocabulary has it as one (llguidance's ``<[id]>``)."""
    token = tokenizer.convert_tokens_to_ids(marker)
    if isinstance(token, int) and token != tokenizer.unk_token_id and tokenizer.decode([token]) == marker:
        return f"<[{token}]>"
    return json.dumps(marker)


def parse_calls(
    text: str, syntax: str | None, names: set[str] | None = None
) -> tuple[str | None, list[ParsedCall]]:
    """Split a reply into its text content and its tool calls.

    Nothing is a call unless the whole syntax parses and, given ``names`` (the offered tools), every
    call names one of them: a JSON answer that happens to have a "name" key stays text.
    """
    if syntax == "hermes" and OPEN in text:
        calls = [_call(body, "arguments", names) for body in _HERMES.findall(text)]
        if calls and all(calls):
            content = _EMPTY_THINK.sub("", text[: text.index(OPEN)] + _after_last(text)).strip()
            return content or None, calls
    elif syntax == "json":
        call = _call(text.strip().removeprefix("<|python_tag|>"), "parameters", names)
        if call:
            return None, [call]
    return text, []


def _after_last(text: str) -> str:
    end = text.rfind(CLOSE)
    return text[end + len(CLOSE) :] if end >= 0 else ""


def _call(body: str, key: str, names: set[str] | None) -> ParsedCall | None:
    try:
        obj = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    if names is not None and obj["name"] not in names:
        return None
    arguments = obj.get(key, obj.get("arguments", {}))
    return ParsedCall(obj["name"], arguments if isinstance(arguments, str) else json.dumps(arguments))


def call_dicts(calls: list[ParsedCall], *, streamed: bool = False) -> list[dict[str, Any]]:
    """OpenAI's ``tool_calls`` (with ``index`` in stream deltas)."""
    out = []
    for i, call in enumerate(calls):
        entry = {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function"}
        entry["function"] = {"name": call.name, "arguments": call.arguments}
        out.append({"index": i, **entry} if streamed else entry)
    return out


class ToolStream:
    """Between the model's text pieces and the client: text goes out, a tool call is held back whole."""

    def __init__(self, syntax: str):
        self.syntax = syntax
        self.text = ""
        self.sent = 0
        self.holding = False

    def feed(self, piece: str) -> str:
        """The part of the reply so far that is surely content (not the start of a call)."""
        self.text += piece
        if self.holding:
            return ""
        if self.syntax == "hermes":
            start = self.text.find(OPEN, self.sent)
            if start >= 0:
                self.holding = True
                return self._send(start)
            return self._send(len(self.text) - _partial(self.text, OPEN))
        head = self.text.lstrip()
        if not head:
            return ""
        if head[0] in "{<":  # a Llama JSON call (or its python tag) starts the reply
            self.holding = True
            return ""
        return self._send(len(self.text))

    def rest(self, content: str | None) -> str:
        """What of the final ``content`` has not gone out yet."""
        content = content or ""
        sent = self.text[: self.sent]
        return content[len(sent) :] if content.startswith(sent) else ""

    def _send(self, upto: int) -> str:
        out = self.text[self.sent : upto] if upto > self.sent else ""
        self.sent = max(self.sent, upto)
        return out


def _partial(text: str, marker: str) -> int:
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0
