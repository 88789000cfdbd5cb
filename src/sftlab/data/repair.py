"""Repairs that keep the good part of a conversation a reader would otherwise reject whole.

Public chat dumps are cut from longer sessions: many start with the assistant's
greeting (the user turn before it was lost), or break at some turn (an empty
answer, a role nobody mapped, two user turns in a row) after several good
exchanges. Rejecting the whole conversation throws those exchanges away, so
reading can repair instead, counting what it did per repair and recording it in
``meta.provenance["read_repairs"]``:

* ``drop_leading_assistant`` — drop assistant/tool turns before the first user
  turn (what FastChat's trainer does with ShareGPT data);
* ``keep_valid_prefix`` — keep the longest prefix of turns that is a valid
  conversation ending in an assistant answer.

A record no repair makes valid is rejected with its original reason.

>>> from sftlab.data.record import Conversation, Turn
>>> conv = Conversation(turns=[Turn("assistant", "Hi! How can I help?"), Turn("user", "2+2?"), Turn("assistant", "4")])
>>> fixed, done = repair(conv, ("drop_leading_assistant",))
>>> [t.role for t in fixed.turns], done
(['user', 'assistant'], ['drop_leading_assistant'])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sftlab.data.record import Conversation, Record
from sftlab.data.validate import InvalidRecord, check_conversation, check_record
from sftlab.errors import DataError

REPAIRS: dict[str, str] = {
    "drop_leading_assistant": "drop assistant/tool turns before the first user turn",
    "keep_valid_prefix": "keep the longest valid prefix that ends in an assistant answer",
}
DEFAULT_REPAIRS: tuple[str, ...] = ("drop_leading_assistant", "keep_valid_prefix")


def _valid(conv: Conversation) -> bool:
    try:
        check_conversation(conv)
    except InvalidRecord:
        return False
    return True


def _drop_leading_assistant(conv: Conversation) -> Conversation | None:
    first_user = next((i for i, t in enumerate(conv.turns) if t.role == "user"), None)
    if not first_user:  # no user turn, or it is already first
        return None
    return replace(conv, turns=conv.turns[first_user:])


def _keep_valid_prefix(conv: Conversation) -> Conversation | None:
    for end in range(len(conv.turns) - 1, 1, -1):
        if conv.turns[end - 1].role != "assistant" or conv.turns[end - 1].tool_calls:
            continue  # a prefix must end in an answer, not a call left without its result
        prefix = replace(conv, turns=conv.turns[:end])
        if _valid(prefix):
            return prefix
    return None


_FIXES = {"drop_leading_assistant": _drop_leading_assistant, "keep_valid_prefix": _keep_valid_prefix}


def repair(record: Record, repairs: Sequence[str]) -> tuple[Record, list[str]]:
    """``(record, repairs applied)`` when ``record`` is valid as is or after ``repairs`` (in order).

    Raises the original :class:`InvalidRecord` when no repair makes it valid.
    """
    try:
        return check_record(record), []
    except InvalidRecord as original:
        if not repairs or not isinstance(record, Conversation) or not isinstance(record.turns, list):
            raise
        failure = original
    current, done = record, []
    for name in repairs:
        fixed = _FIXES[name](current)
        if fixed is None:
            continue
        current = fixed
        done.append(name)
        if _valid(current):
            current.meta.provenance = {**current.meta.provenance, "read_repairs": done}
            return current, done
    raise failure


def check_repairs(names: Sequence[str]) -> None:
    """Fail early on a repair name that does not exist."""
    unknown = [n for n in names if n not in REPAIRS]
    if unknown:
        raise DataError(f"unknown repair {unknown[0]!r}; choose from {', '.join(REPAIRS)}")
