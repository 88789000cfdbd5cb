"""Alpaca: ``instruction``, ``input``, ``output``, optional ``system`` and ``history``.

``history`` is a list of ``[user, assistant]`` pairs before the final exchange.
The user turn is ``instruction`` and ``input`` joined by a newline (as
LLaMA-Factory does); written back, the whole user turn goes to ``instruction``
and ``input`` is empty. Tools, tool calls, reasoning, turn weights and names
cannot be expressed: a record with tool turns is skipped, the rest is dropped
and counted.

>>> rec = parse({"instruction": "Translate", "input": "chat", "output": "cat"}, Mapping())
>>> [t.content for t in rec.turns]
['Translate\\nchat', 'cat']
"""

from __future__ import annotations

from typing import Any

from sftlab.data.formats._common import as_list, meta_columns, optional_str, take_meta
from sftlab.data.mapping import Mapping
from sftlab.data.record import Conversation, Record, TextRecord, Turn
from sftlab.data.validate import InvalidRecord, require_str

NAME = "alpaca"
KNOWN = frozenset({"instruction", "input", "output", "system", "history"})


def parse(row: dict[str, Any], mapping: Mapping) -> Record:
    for key in ("instruction", "output"):
        if key not in row or row[key] is None:
            raise InvalidRecord(
                "missing_field",
                f"'{key}' is missing (map another column with mapping: {{prompt|response: ...}})",
            )
    instruction = require_str(row["instruction"], "instruction")
    extra_input = optional_str(row.get("input"), "input")
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
    return Conversation(
        turns=turns, system=optional_str(row.get("system"), "system"), meta=take_meta(row, KNOWN)
    )


def dump(record: Record) -> tuple[dict[str, Any] | None, list[str]]:
    if isinstance(record, TextRecord):
        return None, ["text_record"]
    turns = record.turns
    if any(t.role == "tool" or t.tool_calls for t in turns):
        return None, ["tool_calls"]
    if len(turns) % 2 or turns[-1].role != "assistant":
        return None, ["not_user_assistant_pairs"]
    dropped = []
    if record.tools:
        dropped.append("tools")
    if any(t.reasoning for t in turns):
        dropped.append("reasoning")
    if any(t.weight is not None for t in turns):
        dropped.append("turn_weight")
    if any(t.name for t in turns):
        dropped.append("turn_name")
    meta = meta_columns(record.meta)
    row: dict[str, Any] = {"id": meta.pop("id")} if "id" in meta else {}
    row["instruction"] = turns[-2].content
    row["input"] = ""
    row["output"] = turns[-1].content
    if record.system is not None:
        row["system"] = record.system
    if len(turns) > 2:
        row["history"] = [[turns[i].content, turns[i + 1].content] for i in range(0, len(turns) - 2, 2)]
    row.update(meta)
    return row, dropped
