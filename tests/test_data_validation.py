"""Broken inputs: one clear reason per bad record, the location named, and in = kept + rejected."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sftlab.data.io import read_records
from sftlab.data.validate import REASONS
from sftlab.errors import DataError

BROKEN = Path(__file__).parent / "data" / "broken"

# file -> {location index: reason}; every other record of the file is good
EXPECTED = {
    "alpaca_bad.jsonl": {
        2: "malformed_json",
        3: "missing_field",
        4: "empty_assistant_turn",
        5: "non_string_content",
        6: "invalid_utf8",
        7: "not_an_object",
        9: "wrong_type",
        12: "duplicate_id",
    },
    "messages_bad.jsonl": {
        2: "assistant_first",
        3: "consecutive_user_turns",
        4: "tool_result_without_call",
        5: "no_assistant_turn",
        6: "unknown_role",
        7: "non_string_content",
        8: "system_not_first",
        9: "bad_tool_call",
        10: "empty_user_turn",
        11: "wrong_type",
        12: "consecutive_assistant_turns",
    },
    "sharegpt_bad.json": {
        2: "unknown_role",
        3: "empty_assistant_turn",
        4: "bad_tool_call",
        5: "not_an_object",
        6: "non_string_content",
        7: "wrong_type",
    },
    "alpaca_bad.csv": {2: "missing_field", 4: "wrong_type"},
}
FORMATS = {
    "alpaca_bad.jsonl": "alpaca",
    "messages_bad.jsonl": "messages",
    "sharegpt_bad.json": "sharegpt",
    "alpaca_bad.csv": "alpaca",
}
TOTAL = {"alpaca_bad.jsonl": 11, "messages_bad.jsonl": 12, "sharegpt_bad.json": 7, "alpaca_bad.csv": 4}


def _loc(name: str, index: int) -> str:
    path = str(BROKEN / name)
    return {"json": f"{path}:record {index}", "csv": f"{path}:row {index}"}.get(
        name.rsplit(".", 1)[1], f"{path}:{index}"
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_skip_rejects_each_bad_record_with_its_reason_and_location(tmp_path, name):
    rejects = tmp_path / "rejects.jsonl"
    stream = read_records(BROKEN / name, on_error="skip", rejects_path=rejects)
    kept = list(stream)
    s = stream.stats
    assert s.format == FORMATS[name]
    assert s.records_in == TOTAL[name] == s.kept + s.rejected
    assert len(kept) == s.kept == TOTAL[name] - len(EXPECTED[name])
    rows = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert {r["location"]: r["reason"] for r in rows} == {
        _loc(name, i): why for i, why in EXPECTED[name].items()
    }
    assert all(r["reason"] in REASONS and r["message"] for r in rows)
    assert sum(s.rejected_by_reason.values()) == s.rejected


def test_rejects_keep_the_raw_line_verbatim(tmp_path):
    rejects = tmp_path / "r.jsonl"
    list(read_records(BROKEN / "alpaca_bad.jsonl", on_error="skip", rejects_path=rejects))
    raw_lines = (BROKEN / "alpaca_bad.jsonl").read_bytes().split(b"\n")
    by_loc = {r["location"]: r for r in map(json.loads, rejects.read_text().splitlines())}
    assert by_loc[_loc("alpaca_bad.jsonl", 2)]["raw"] == raw_lines[1].decode()
    assert by_loc[_loc("alpaca_bad.jsonl", 5)]["raw"] == raw_lines[4].decode()
    assert "\\xe9" in by_loc[_loc("alpaca_bad.jsonl", 6)]["raw"]  # undecodable byte shown, not lost


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fail_stops_at_the_first_bad_record_naming_it(name):
    first = min(EXPECTED[name])
    with pytest.raises(DataError) as err:
        list(read_records(BROKEN / name))
    assert str(err.value).startswith(f"{_loc(name, first)}: {EXPECTED[name][first]}:")


def test_file_level_problems_are_one_line_errors(tmp_path):
    bad = tmp_path / "arr.json"
    bad.write_text('[{"instruction": "a", "output": "b"},')
    with pytest.raises(DataError, match="not valid JSON"):
        list(read_records(bad))
    with pytest.raises(DataError, match="file not found"):
        read_records(tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match="unknown data format 'alpacca'"):
        read_records(BROKEN / "alpaca_bad.jsonl", format="alpacca")


# ---------------------------------------------------------------- property: invalid records never crash

_word = st.text("abc xyz", min_size=1, max_size=8).filter(str.strip)
_role = st.sampled_from(["user", "assistant", "tool", "system", "human", "gpt", "wizard", "", None, 3])
_content = st.one_of(_word, st.just(""), st.none(), st.integers(), st.lists(_word, max_size=2))
_turn = st.one_of(
    st.fixed_dictionaries({"role": _role, "content": _content}),
    st.fixed_dictionaries({"from": _role, "value": _content}),
    st.builds(
        lambda c: {"role": "assistant", "content": None, "tool_calls": c},
        st.one_of(st.just([{}]), st.just("x"), st.just([{"function": {"name": "f"}}])),
    ),
    _word,
)
_row = st.one_of(
    st.fixed_dictionaries({"messages": st.lists(_turn, max_size=4)}),
    st.fixed_dictionaries({"conversations": st.one_of(st.lists(_turn, max_size=4), _word)}),
    st.fixed_dictionaries(
        {
            "instruction": _content,
            "output": _content,
            "history": st.one_of(st.none(), st.lists(st.lists(_content, max_size=3), max_size=2)),
        }
    ),
    st.dictionaries(st.sampled_from(["kind", "turns", "text", "x"]), _content, max_size=3),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.one_of(_row, st.just("{broken"), st.just("[1]")), min_size=1, max_size=6))
def test_property_random_input_is_kept_or_rejected_never_crashes(tmp_path, rows):
    path = tmp_path / "fuzz.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    for fmt in ("messages", "sharegpt", "alpaca", "sftlab"):
        stream = read_records(path, format=fmt, on_error="skip")
        try:
            list(stream)
        except DataError:
            pytest.fail("on_error=skip must not raise for record-level problems")
        s = stream.stats
        assert s.records_in == len(rows) == s.kept + s.rejected
        assert set(s.rejected_by_reason) <= set(REASONS)
        with pytest.raises(DataError) if s.rejected else contextlib.nullcontext():
            list(read_records(path, format=fmt))


@settings(max_examples=60, deadline=None)
@given(order=st.lists(st.sampled_from(["user", "assistant", "tool"]), min_size=1, max_size=6))
def test_property_role_order_rule(order):
    """A conversation is valid iff it starts with user, never repeats user/assistant, and tools follow calls."""
    from sftlab.data.record import Conversation, ToolCall, Turn
    from sftlab.data.validate import InvalidRecord, check_conversation

    turns = [
        Turn(
            r,
            "x",
            tool_calls=[ToolCall("f")]
            if r == "assistant" and i + 1 < len(order) and order[i + 1] == "tool"
            else [],
        )
        for i, r in enumerate(order)
    ]
    ok = order[0] == "user" and "assistant" in order
    for a, b in zip(order, order[1:], strict=False):
        ok &= not (a == b and a != "tool") and not (b == "tool" and a == "user")
    try:
        check_conversation(Conversation(turns=turns))
        assert ok
    except InvalidRecord as bad:
        assert not ok and bad.reason in REASONS
