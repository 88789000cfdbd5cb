"""Canonical records → the message dicts ``apply_chat_template`` expects.

Tool calls become OpenAI-style ``{"type": "function", "function": {...}}``
entries, tool results ``role: tool`` messages, and reasoning either
``reasoning_content`` (for templates that render it), inline ``<think>`` text,
or nothing.

>>> from sftlab.data.record import Conversation, Turn
>>> to_messages(Conversation(turns=[Turn("user", "hi"), Turn("assistant", "hello")], system="Be brief."))
[{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'hi'}, {'role': 'assistant', 'content': 'hello'}]
>>> to_messages(Conversation(turns=[Turn("user", "2+2?"), Turn("assistant", "4", reasoning="2+2=4")]), reasoning="inline")[1]
{'role': 'assistant', 'content': '<think>2+2=4</think>\\n4'}
"""

from __future__ import annotations

from typing import Any

from sftlab.data.record import Conversation, Turn


def turn_message(turn: Turn, reasoning: str = "template") -> dict[str, Any]:
    """One turn as a message dict."""
    content = turn.content or ""
    msg: dict[str, Any] = {"role": turn.role, "content": content}
    if turn.reasoning:
        if reasoning == "inline":
            msg["content"] = f"<think>{turn.reasoning}</think>\n{content}"
        elif reasoning == "template":
            msg["reasoning_content"] = turn.reasoning
    if turn.tool_calls:
        msg["tool_calls"] = [
            {
                "type": "function",
                **({"id": c.id} if c.id is not None else {}),
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in turn.tool_calls
        ]
    if turn.tool_call_id is not None:
        msg["tool_call_id"] = turn.tool_call_id
    if turn.name is not None:
        msg["name"] = turn.name
    return msg


def to_messages(conv: Conversation, reasoning: str = "template") -> list[dict[str, Any]]:
    """The system prompt (if any) followed by every turn, in order."""
    msgs = [{"role": "system", "content": conv.system}] if conv.system is not None else []
    return msgs + [turn_message(t, reasoning) for t in conv.turns]
