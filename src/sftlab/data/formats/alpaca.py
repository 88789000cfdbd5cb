"""Alpaca: ``instruction``, ``input``, ``output``, optional ``system`` and ``history``.

``history`` is a list of ``[user, assistant]`` pairs before the final exchange;
``tools`` (LLaMA-Factory's column) holds tool definitions, as JSON text or a list.
The user turn is ``instruction`` and ``input`` joined by a newline (as
LLaMA-Factory does). Written back, a record read from Alpaca gets its own
``instruction``/``input`` split again (kept in ``meta.source_shape``, used while
the user turn still ends with that input); any other record puts the whole user
turn in ``instruction`` with an empty ``input``. Tool calls, reasoning, turn
weights and names cannot be expressed: a record with tool turns is skipped, the
rest is dropped and counted.

>>> rec = parse({"instruction": "Translate", "input": "chat", "output": "cat"}, Mapping())
>>> [t.content for t in rec.turns], rec.meta.source_shape
(['Translate\\nchat', 'cat'], {'alpaca': {'input': 'chat'}})
>>> dump(rec)[0]
{'instruction': 'Translate', 'input': 'chat', 'output': 'cat'}
"""

from __future__ import annotations

from typing import Any

from sftlab.data.formats import _shape
from sftlab.data.formats._common import as_list, meta_columns, optional_str, take_meta
from sftlab.data.mapping import Mapping
from sftlab.data.record import Conversation, Record, TextRecord, Turn
from sftlab.data.validate import InvalidRecord, require_str

NAME = "alpaca"
KNOWN = frozenset({"instruction", "input", "output", "system", "history", "tools"})


def parse(row: dict[str, Any], mapping: Mapping) -> Record:
    extra_input = optional_str(row.get("input"), "input")
    for key in ("instruction", "output"):
        # an empty instruction next to an input is fine; CSV and Parquet hold it as null
        if key not in row or (row[key] is None and not (key == "instruction" and extra_input)):
            raise InvalidRecord(
                "missing_field",
                f"'{key}' is missing (map another column with mapping: {{prompt|response: ...}})",
            )
    instruction = require_str(row["instruction"] or "", "instruction")
    output = require_str(row["output"], "output")
    turns: list[Turn] = []
    for i, pair in enumerate(as_list(row.get("history"), "history") or []):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise InvalidRecord("wrong_type", f"history[{i}] must be a [user, assistant] pair")
        turns.append(Turn("user", require_str(pair[0], f"history[{i}][0]")))
        turns.append(Turn("assistant", require_str(pair[1], f"history[{i}][1]")))
    user = (
        f"{instruction}\n{extra_input}" if instruction and extra_input else (instruction or extra_input or "")
    )
    turns.append(Turn("user", user))
    turns.append(Turn("assistant", output))
    tools = as_list(row.get("tools"), "tools")
    shape = _read_shape(row, extra_input, tools)
    if mapping.columns:
        _shape.remember_columns(mapping.columns, row, KNOWN, shape)
    return Conversation(
        turns=turns,
        system=optional_str(row.get("system"), "system"),
        tools=tools or None,
        meta=take_meta(row, KNOWN, NAME, shape),
    )


def _read_shape(row: dict[str, Any], extra_input: str | None, tools: list | None) -> dict[str, Any]:
    """What the writer needs to give this row back: the input split off, absent or empty fields, tools text."""
    shape: dict[str, Any] = {}
    if extra_input:
        shape["input"] = extra_input
    elif "input" not in row:
        shape["no_input"] = True
    _shape.remember_empty(row, ("system", "history"), shape)
    if row.get("tools") is None:
        return shape
    texts = _shape.JsonTexts()
    _shape.remember_tools(row["tools"], tools, texts, shape, as_text=True)
    return _shape.finish(texts, shape)


def _split_user(user: str, shape: dict[str, Any]) -> tuple[str, str]:
    """``(instruction, input)`` for the final user turn: the source's split while it still applies."""
    extra_input = shape.get("input")
    if extra_input:
        if user == extra_input:  # the source had an empty instruction
            return "", extra_input
        if user.endswith("\n" + extra_input):
            return user[: -len(extra_input) - 1], extra_input
    return user, ""


def dump(record: Record) -> tuple[dict[str, Any] | None, list[str]]:
    if isinstance(record, TextRecord):
        return None, ["text_record"]
    turns = record.turns
    if any(t.role == "tool" or t.tool_calls for t in turns):
        return None, ["tool_calls"]
    if len(turns) % 2 or turns[-1].role != "assistant":
        return None, ["not_user_assistant_pairs"]
    dropped = []
    if any(t.reasoning for t in turns):
        dropped.append("reasoning")
    if any(t.weight is not None for t in turns):
        dropped.append("turn_weight")
    if any(t.name for t in turns):
        dropped.append("turn_name")
    shape = record.meta.source_shape.get(NAME, {})
    empty = shape.get("empty", {})
    meta = meta_columns(record.meta, NAME)
    row: dict[str, Any] = {"id": meta.pop("id")} if "id" in meta else {}
    row["instruction"], extra_input = _split_user(turns[-2].content, shape)
    if extra_input or not shape.get("no_input"):
        row["input"] = extra_input
    row["output"] = turns[-1].content
    if record.system is not None:
        row["system"] = record.system
    elif "system" in empty:
        row["system"] = empty["system"]
    if len(turns) > 2:
        row["history"] = [[turns[i].content, turns[i + 1].content] for i in range(0, len(turns) - 2, 2)]
    elif "history" in empty:
        row["history"] = empty["history"]
    write_tools, tools = _shape.tools_field(record.tools, shape, as_text=True)
    if write_tools:
        row["tools"] = tools
    row = _shape.restore_columns(row, shape)
    row.update(meta)
    return row, dropped
