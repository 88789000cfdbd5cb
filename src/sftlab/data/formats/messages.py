"""OpenAI messages: ``messages`` of ``{role, content}``, with tools and reasoning.

* ``system``/``developer`` messages before the first turn become the system prompt;
* ``content`` may be a list of ``{type: text, text}`` parts (joined) or ``null``
  next to ``tool_calls``;
* assistant ``tool_calls`` are ``{id, type: function, function: {name, arguments}}``
  with ``arguments`` a JSON string; ``tool`` messages carry ``tool_call_id``;
* assistant reasoning comes from ``reasoning_content``, ``reasoning`` or
  ``thinking`` and is written back as ``reasoning_content``;
* ``weight`` (0/1 per message, as in OpenAI fine-tuning files) and ``name`` are kept.

Written back, a record read from this format keeps its source's shape
(``meta.source_shape``): ``content: null`` next to tool calls, content given as
text parts, the reasoning key, a ``system`` column, tools as JSON text, and each
``arguments`` text as the source spaced it.

>>> rec = parse({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]},
...                           {"role": "assistant", "content": "hello", "reasoning_content": "greet"}]}, Mapping())
>>> dump(rec)[0]["messages"][1]
{'role': 'assistant', 'content': 'hello', 'reasoning_content': 'greet'}
"""

from __future__ import annotations

from typing import Any

from sftlab.data.formats import _shape
from sftlab.data.formats._common import (
    as_list,
    meta_columns,
    optional_str,
    take_meta,
    tool_call_from,
    weight_of,
)
from sftlab.data.mapping import Mapping
from sftlab.data.record import Conversation, Record, TextRecord, ToolCall, Turn
from sftlab.data.validate import InvalidRecord

NAME = "messages"
KNOWN = frozenset({"messages", "conversations", "tools", "system"})
_REASONING_KEYS = ("reasoning_content", "reasoning", "thinking")


def _content(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list):
        parts = []
        for j, part in enumerate(value):
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise InvalidRecord(
                    "non_string_content", f"{where}.content[{j}] is a {kind!r} part, not text"
                )
        return "".join(parts)
    raise InvalidRecord("non_string_content", f"{where}.content is {type(value).__name__}, expected a string")


def parse(row: dict[str, Any], mapping: Mapping) -> Record:
    key = "messages" if "messages" in row else "conversations"
    msgs = as_list(row.get(key), key)
    if msgs is None:
        raise InvalidRecord(
            "missing_field", "'messages' is missing (map another column with mapping: {messages: ...})"
        )
    role_tag, content_tag = mapping.role_tag or "role", mapping.content_tag or "content"
    system = optional_str(row.get("system"), "system")
    shape: dict[str, Any] = {"system": "column"} if system is not None else {}
    texts = _shape.JsonTexts()
    turns: list[Turn] = []
    for i, m in enumerate(msgs):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise InvalidRecord("wrong_type", f"{where} must be an object, got {type(m).__name__}")
        raw_role = m.get(role_tag)
        role = mapping.role(raw_role)
        if role is None or role == "function_call":
            raise InvalidRecord(
                "unknown_role",
                f"{where} has role {raw_role!r}; map it with user_tag/assistant_tag/observation_tag",
            )
        raw_content = m.get(content_tag)
        content = _content(raw_content, where)
        if isinstance(raw_content, list):  # text parts: joined here, given back as parts by the writer
            shape.setdefault("parts", {})[content] = raw_content
        if role == "system":
            if turns:
                raise InvalidRecord(
                    "system_not_first", f"{where} is a system message after the conversation started"
                )
            system = content if system is None else f"{system}\n{content}"
            continue
        turn = Turn(role, content, weight=weight_of(m.get("weight"), where))
        name = m.get("name")
        if isinstance(name, str):
            turn.name = name
        if role == "assistant":
            _assistant_parts(turn, m, where, shape, texts)
            if turn.tool_calls and m.get(content_tag) is None:
                shape["null_content"] = True
        elif role == "tool":
            call_id = m.get("tool_call_id")
            if isinstance(call_id, str):
                turn.tool_call_id = call_id
        turns.append(turn)
    column = next((theirs for theirs, ours in mapping.columns.items() if ours == key), key)
    if column != "messages":
        shape["column"] = column
    if mapping.columns:
        _shape.remember_columns(mapping.columns, row, frozenset({"system", "tools"}), shape)
    tools = as_list(row.get("tools"), "tools")
    if not tools:  # tools as JSON text is how CSV and Parquet store the list, not worth noting
        _shape.remember_tools(row.get("tools"), tools, texts, shape, as_text=False)
    _shape.remember_empty(row, ("system",), shape)
    shape = _shape.finish(texts, shape)
    return Conversation(
        turns=turns, system=system, tools=tools or None, meta=take_meta(row, KNOWN, NAME, shape)
    )


def _assistant_parts(
    turn: Turn, m: dict[str, Any], where: str, shape: dict[str, Any], texts: _shape.JsonTexts
) -> None:
    """Reasoning and tool calls of an assistant message, noting the key and argument texts the file used."""
    for rk in _REASONING_KEYS:
        value = m.get(rk)
        if value is not None:
            turn.reasoning = _content(value, f"{where}.{rk}")
            if rk != _REASONING_KEYS[0]:
                shape["reasoning_key"] = rk
            break
    calls = m.get("tool_calls")
    if calls is None and isinstance(m.get("function_call"), dict):
        calls = [m["function_call"]]  # legacy single function_call
    for j, c in enumerate(as_list(calls, f"{where}.tool_calls") or []):
        call = tool_call_from(c, f"{where}.tool_calls[{j}]")
        if isinstance(call.arguments, dict):
            fn = c["function"] if isinstance(c.get("function"), dict) else c
            texts.add(call.arguments, fn.get("arguments"))
        turn.tool_calls.append(call)


def dump(record: Record) -> tuple[dict[str, Any] | None, list[str]]:
    if isinstance(record, TextRecord):
        return None, ["text_record"]
    shape = record.meta.source_shape.get(NAME, {})
    msgs: list[dict[str, Any]] = []
    parts = shape.get("parts", {})
    seen: dict[str, int] = {}
    system_column = shape.get("system") == "column"
    if record.system is not None and not system_column:
        msgs.append({"role": "system", "content": parts.get(record.system, record.system)})
    for t in record.turns:
        d: dict[str, Any] = {
            "role": t.role,
            "content": parts.get(t.content, t.content) if parts else t.content,
        }
        if t.reasoning is not None:
            d[shape.get("reasoning_key", _REASONING_KEYS[0])] = t.reasoning
        if t.tool_calls:
            if not t.content and shape.get("null_content"):
                d["content"] = None
            d["tool_calls"] = [
                {
                    **({"id": c.id} if c.id is not None else {}),
                    "type": "function",
                    "function": {"name": c.name, "arguments": _arguments_text(c, shape, seen)},
                }
                for c in t.tool_calls
            ]
        if t.tool_call_id is not None:
            d["tool_call_id"] = t.tool_call_id
        if t.name is not None:
            d["name"] = t.name
        if t.weight is not None:
            d["weight"] = t.weight
        msgs.append(d)
    meta = meta_columns(record.meta, NAME)
    row: dict[str, Any] = {"id": meta.pop("id")} if "id" in meta else {}
    row[shape.get("column", "messages")] = msgs
    if system_column and record.system is not None:
        row["system"] = record.system
    elif "system" in shape.get("empty", {}):
        row["system"] = shape["empty"]["system"]
    if record.tools or shape:
        write_tools, tools = _shape.tools_field(record.tools, shape, as_text=False)
        if write_tools:
            row["tools"] = tools
        row = _shape.restore_columns(row, shape)
    row.update(meta)
    return row, []


def _arguments_text(call: ToolCall, shape: dict[str, Any], seen: dict[str, int]) -> str:
    """OpenAI's ``arguments`` JSON string, spaced as the source wrote it."""
    if isinstance(call.arguments, dict):
        return _shape.json_text(call.arguments, shape, seen)
    return call.arguments
