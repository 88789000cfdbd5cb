"""ShareGPT: ``conversations`` of ``{from, value}`` turns.

Roles ``human``/``gpt``/``system``/``function_call``/``observation`` (and the
aliases ``user``/``assistant``/``tool``; others via ``user_tag`` etc. in the
mapping). A ``function_call`` turn holds one call ``{name, arguments}`` or a list
of them; right after a ``gpt`` turn it joins that turn (an answer that both
speaks and calls). ``tools`` may be a JSON string (LLaMA-Factory) or a list.
Reasoning cannot be expressed and is dropped (counted). Tool-call ids and
``tool_call_id`` travel as extra keys, so our own round trip loses nothing.

Written back, a record read from ShareGPT keeps its source's shape
(``meta.source_shape``): the JSON text of each ``function_call`` and of ``tools``
as the source spaced it, an empty ``tools: "[]"``, a system prompt given as a
column, the column names (``messages``, or a mapped ``dialog``), and the turn
keys and role names the file used (``role``/``content``, ``user``/``assistant``).

>>> rec = parse({"conversations": [{"from": "human", "value": "你好"}, {"from": "gpt", "value": "你好！"}]}, Mapping())
>>> [(t.role, t.content) for t in rec.turns]
[('user', '你好'), ('assistant', '你好！')]
"""

from __future__ import annotations

from typing import Any

import orjson

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

NAME = "sharegpt"
KNOWN = frozenset({"conversations", "messages", "system", "tools"})
_OTHER_COLUMNS = frozenset({"system", "tools"})


def _calls(value: Any, where: str) -> list[ToolCall]:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise InvalidRecord("bad_tool_call", f"{where}: function_call value is not JSON") from None
    items = value if isinstance(value, list) else [value]
    return [tool_call_from(c, where) for c in items]


def parse(row: dict[str, Any], mapping: Mapping) -> Record:
    key = "conversations" if "conversations" in row else "messages"
    turns_raw = as_list(row.get(key), key)
    if turns_raw is None:
        raise InvalidRecord(
            "missing_field", "'conversations' is missing (map another column with mapping: {messages: ...})"
        )
    role_tag, content_tag = mapping.role_tag or "from", mapping.content_tag or "value"
    system = optional_str(row.get("system"), "system")
    shape: dict[str, Any] = {"system": "column"} if system is not None else {}
    spelled: dict[str, str] = {}  # canonical role -> the file's name for it, where not ours
    texts = _shape.JsonTexts()
    roles = mapping.roles
    turns: list[Turn] = []
    append = turns.append
    # hot path of every conversion: no per-turn string formatting unless something is wrong
    for i, t in enumerate(turns_raw):
        if type(t) is not dict:
            raise InvalidRecord("wrong_type", f"conversations[{i}] must be an object, got {type(t).__name__}")
        raw_role = t[role_tag] if role_tag in t else t.get("role")
        role = roles.get(raw_role) if type(raw_role) is str else None
        if role is None:
            role = _role_fallback(raw_role, i, mapping)
        if raw_role != _SPELLING[role] and role not in spelled:
            spelled[role] = raw_role
        value = t[content_tag] if content_tag in t else t.get("content")
        if role == "function_call":
            calls = _calls(value, f"conversations[{i}]")
            texts.add(_call_value(calls), value)
            if turns and turns[-1].role == "assistant" and not turns[-1].tool_calls:
                turns[-1].tool_calls = calls
            else:
                append(Turn("assistant", "", tool_calls=calls))
            continue
        if type(value) is not str:
            if value is None:
                value = ""
            else:
                raise InvalidRecord(
                    "non_string_content",
                    f"conversations[{i}] value is {type(value).__name__}, expected a string",
                )
        if role == "system":
            if turns:
                raise InvalidRecord(
                    "system_not_first", f"conversations[{i}] is a system turn after the conversation started"
                )
            system = value if system is None else f"{system}\n{value}"
            continue
        turn = Turn(role, value)
        if len(t) > 2:  # optional keys beyond role and content
            _turn_extras(turn, t, i)
        append(turn)
    tools = as_list(row.get("tools"), "tools")
    _note_layout(row, key, mapping.columns, turns_raw, (role_tag, content_tag), spelled, shape)
    _shape.remember_tools(row.get("tools"), tools, texts, shape, as_text=True)
    shape = _shape.finish(texts, shape)
    return Conversation(
        turns=turns, system=system, tools=tools or None, meta=take_meta(row, KNOWN, NAME, shape)
    )


def _role_fallback(raw_role: Any, i: int, mapping: Mapping) -> str:
    """The role for a spelling the fast lookup missed (other case), or ``unknown_role``."""
    role = mapping.role(raw_role)
    if role is None:
        raise InvalidRecord(
            "unknown_role",
            f"conversations[{i}] has role {raw_role!r}; map it with user_tag/assistant_tag/observation_tag",
        )
    return role


def _turn_extras(turn: Turn, t: dict[str, Any], i: int) -> None:
    """A turn's optional keys beyond role and content: weight, name, tool_call_id (sftlab's own output)."""
    turn.weight = weight_of(t.get("weight"), f"conversations[{i}]")
    name = t.get("name")
    if isinstance(name, str):
        turn.name = name
    call_id = t.get("tool_call_id")
    if turn.role == "tool" and isinstance(call_id, str):
        turn.tool_call_id = call_id


def _note_layout(
    row: dict[str, Any],
    key: str,
    columns: dict[str, str],
    turns_raw: list,
    tags: tuple[str, str],
    spelled: dict[str, str],
    shape: dict[str, Any],
) -> None:
    """Column name, turn keys and role names where the file differs from what the writer uses by default."""
    column = next((theirs for theirs, ours in columns.items() if ours == key), key) if columns else key
    if column != "conversations":
        shape["column"] = column
    if columns:
        _shape.remember_columns(columns, row, _OTHER_COLUMNS, shape)
    if turns_raw and type(turns_raw[0]) is dict:
        first, (role_tag, content_tag) = turns_raw[0], tags
        keys = [role_tag if role_tag in first else "role", content_tag if content_tag in first else "content"]
        if keys != ["from", "value"]:
            shape["keys"] = keys
    if spelled:
        shape["roles"] = spelled
    _shape.remember_empty(row, ("system",), shape)


#: How the writer names each role (``function_call`` and ``system`` are pseudo-roles of the format).
_SPELLING = {
    "user": "human",
    "assistant": "gpt",
    "tool": "observation",
    "function_call": "function_call",
    "system": "system",
}


def _call_obj(call: ToolCall) -> dict[str, Any]:
    d: dict[str, Any] = {"name": call.name, "arguments": call.arguments}
    if call.id is not None:
        d["id"] = call.id
    return d


def _call_value(calls: list[ToolCall]) -> Any:
    """What a ``function_call`` turn holds: one call object, or a list of them."""
    objs = [_call_obj(c) for c in calls]
    return objs[0] if len(objs) == 1 else objs


def dump(record: Record) -> tuple[dict[str, Any] | None, list[str]]:
    if isinstance(record, TextRecord):
        return None, ["text_record"]
    shape = record.meta.source_shape.get(NAME, {})
    role_key, content_key = shape.get("keys") or ("from", "value")
    names = {**_SPELLING, **shape.get("roles", {})}
    dropped: list[str] = []
    conv: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    system_column = shape.get("system") == "column"
    if record.system is not None and not system_column:
        conv.append({role_key: names["system"], content_key: record.system})
    for t in record.turns:
        if t.reasoning:
            dropped.append("reasoning")
        if not (t.role == "assistant" and t.tool_calls and not t.content):
            d: dict[str, Any] = {role_key: names[t.role], content_key: t.content}
            if t.name is not None:
                d["name"] = t.name
            if t.tool_call_id is not None:
                d["tool_call_id"] = t.tool_call_id
            if t.weight is not None:
                d["weight"] = t.weight
            conv.append(d)
        elif t.weight is not None or t.name is not None:
            dropped.append("turn_weight" if t.weight is not None else "turn_name")
        if t.tool_calls:
            text = _shape.json_text(_call_value(t.tool_calls), shape, seen)
            conv.append({role_key: names["function_call"], content_key: text})
    meta = meta_columns(record.meta, NAME)
    row: dict[str, Any] = {"id": meta.pop("id")} if "id" in meta else {}
    row[shape.get("column", "conversations")] = conv
    if system_column and record.system is not None:
        row["system"] = record.system
    elif "system" in shape.get("empty", {}):
        row["system"] = shape["empty"]["system"]
    write_tools, tools = _shape.tools_field(record.tools, shape, as_text=True)
    if write_tools:
        row["tools"] = tools
    row = _shape.restore_columns(row, shape)
    row.update(meta)
    return row, sorted(set(dropped))
