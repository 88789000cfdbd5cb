"""Record validation: every problem is a short snake_case reason plus a message.

Readers raise :class:`InvalidRecord` for one bad record; :mod:`sftlab.data.io`
adds the location (``file:line``, ``file:record N``, ``file:row N``) and either
stops (``on_error="fail"``) or writes the record to the rejects file
(``on_error="skip"``). The structural rules on a conversation live here, in one
place, whatever format it came from.

>>> from sftlab.data.record import Conversation, Turn
>>> check_record(Conversation(turns=[Turn("assistant", "hi")]))  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
...
sftlab.data.validate.InvalidRecord: assistant_first: the first turn is 'assistant'; a conversation starts with a user turn
"""

from __future__ import annotations

from typing import Any

from sftlab.data.record import ROLES, Conversation, Record, TextRecord

#: Every reason a reader can reject a record for (documented in ``sftlab data convert --help``).
REASONS: dict[str, str] = {
    "malformed_json": "the line is not valid JSON",
    "invalid_utf8": "the line is not valid UTF-8",
    "not_an_object": "a record must be a JSON object",
    "missing_field": "a required field is absent",
    "empty_field": "a required field is empty",
    "wrong_type": "a field has the wrong type (e.g. a list where a list of turns is expected)",
    "non_string_content": "message content is not a string",
    "unknown_role": "a role name is not known (map it with user_tag/assistant_tag/...)",
    "no_assistant_turn": "the conversation has no assistant turn",
    "empty_assistant_turn": "an assistant turn has no content and no tool calls",
    "empty_user_turn": "a user turn has no content",
    "assistant_first": "the conversation starts with an assistant turn",
    "consecutive_user_turns": "two user turns in a row",
    "consecutive_assistant_turns": "two assistant turns in a row",
    "tool_result_without_call": "a tool result does not follow an assistant tool call",
    "system_not_first": "a system message appears after the first turn",
    "bad_tool_call": "a tool call has no function name or unparsable fields",
    "empty_text": "a text record is empty",
    "duplicate_id": "the record id was already seen in this source",
}


class InvalidRecord(Exception):
    """One record is malformed; ``reason`` is a key of :data:`REASONS`."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        self.message = message
        super().__init__(f"{reason}: {message}")


def require_str(value: Any, what: str, *, reason: str = "non_string_content") -> str:
    """``value`` if it is a string, else :class:`InvalidRecord` naming ``what``."""
    if isinstance(value, str):
        return value
    raise InvalidRecord(reason, f"{what} must be a string, got {type(value).__name__}")


def check_record(record: Record) -> Record:
    """Return ``record`` if it is trainable, else raise :class:`InvalidRecord`."""
    if isinstance(record, TextRecord):
        if not isinstance(record.text, str):
            raise InvalidRecord(
                "non_string_content", f"text must be a string, got {type(record.text).__name__}"
            )
        if not record.text.strip():
            raise InvalidRecord("empty_text", "the text is empty")
        return record
    check_conversation(record)
    return record


def check_conversation(conv: Conversation) -> None:
    """Role order and content rules shared by every conversation format.

    Allowed: ``user → assistant``, ``assistant(tool calls) → tool → tool … → assistant``,
    ``tool → user``. An assistant turn may be empty only when it makes tool calls.
    """
    if not conv.turns:
        raise InvalidRecord("no_assistant_turn", "the conversation has no turns")
    prev = None
    open_calls = False  # the last assistant turn made tool calls not yet followed by a non-tool turn
    has_assistant = False
    for i, turn in enumerate(conv.turns, 1):
        role = turn.role
        if role not in ROLES:
            raise InvalidRecord("unknown_role", f"turn {i} has role {role!r}; expected one of {list(ROLES)}")
        if not isinstance(turn.content, str):
            raise InvalidRecord(
                "non_string_content", f"turn {i} ({role}) content is {type(turn.content).__name__}"
            )
        if role == "assistant":
            has_assistant = True
            if prev is None:
                raise InvalidRecord(
                    "assistant_first", "the first turn is 'assistant'; a conversation starts with a user turn"
                )
            if prev == "assistant":
                raise InvalidRecord(
                    "consecutive_assistant_turns", f"turns {i - 1} and {i} are both 'assistant'"
                )
            if not turn.content.strip() and not turn.tool_calls:
                raise InvalidRecord(
                    "empty_assistant_turn", f"turn {i} (assistant) is empty and makes no tool calls"
                )
            for call in turn.tool_calls:
                if not isinstance(call.name, str) or not call.name:
                    raise InvalidRecord("bad_tool_call", f"turn {i} has a tool call without a function name")
            open_calls = bool(turn.tool_calls)
        elif role == "user":
            if prev == "user":
                raise InvalidRecord("consecutive_user_turns", f"turns {i - 1} and {i} are both 'user'")
            if not turn.content.strip():
                raise InvalidRecord("empty_user_turn", f"turn {i} (user) is empty")
            open_calls = False
        else:  # tool
            if not open_calls:
                raise InvalidRecord(
                    "tool_result_without_call",
                    f"turn {i} is a tool result but no assistant tool call precedes it",
                )
        prev = role
    if not has_assistant:
        raise InvalidRecord("no_assistant_turn", "the conversation has no assistant turn")
