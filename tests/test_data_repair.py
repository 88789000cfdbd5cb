"""Reading keeps the good part of conversations cut from longer sessions, and says what it repaired."""

from __future__ import annotations

import pytest

from sftlab.data.record import Conversation, ToolCall, Turn
from sftlab.data.repair import repair
from sftlab.data.validate import InvalidRecord

BOTH = ("drop_leading_assistant", "keep_valid_prefix")


def _conv(*turns):
    return Conversation(turns=[Turn(role, text) for role, text in turns])


def test_leading_greeting_is_dropped():
    conv = _conv(
        ("assistant", "Hello! How can I help?"), ("user", "Capital of France?"), ("assistant", "Paris.")
    )
    fixed, done = repair(conv, BOTH)
    assert [(t.role, t.content) for t in fixed.turns] == [
        ("user", "Capital of France?"),
        ("assistant", "Paris."),
    ]
    assert done == ["drop_leading_assistant"]
    assert fixed.meta.provenance["read_repairs"] == ["drop_leading_assistant"]


def test_good_exchanges_before_a_broken_turn_are_kept():
    conv = _conv(
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q2"),
        ("assistant", "a2"),
        ("user", "q3"),
        ("user", "q3 again"),
        ("assistant", "a3"),
    )
    fixed, done = repair(conv, BOTH)
    assert [t.content for t in fixed.turns] == ["q1", "a1", "q2", "a2"] and done == ["keep_valid_prefix"]


def test_empty_answer_cuts_there():
    conv = _conv(("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "  "))
    fixed, _ = repair(conv, BOTH)
    assert [t.content for t in fixed.turns] == ["q1", "a1"]


def test_prefix_never_ends_in_an_unanswered_tool_call():
    conv = Conversation(
        turns=[
            Turn("user", "weather?"),
            Turn("assistant", "", tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]),
            Turn("user", "hello?"),
            Turn("user", "again"),
        ]
    )
    with pytest.raises(InvalidRecord, match="consecutive_user_turns"):
        repair(conv, BOTH)


def test_nothing_to_keep_raises_the_original_reason():
    with pytest.raises(InvalidRecord) as err:
        repair(_conv(("assistant", "Hi"), ("assistant", "Hi again")), BOTH)
    assert err.value.reason == "assistant_first"
    with pytest.raises(InvalidRecord, match="assistant_first"):
        repair(_conv(("assistant", "Hi"), ("user", "q"), ("assistant", "a")), ())  # repairs off


def test_valid_records_are_untouched():
    conv = _conv(("user", "q"), ("assistant", "a"))
    fixed, done = repair(conv, BOTH)
    assert fixed is conv and done == [] and "read_repairs" not in conv.meta.provenance
