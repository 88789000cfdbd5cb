"""The canonical record round-trips through its JSON form."""

from sftlab.data.record import Conversation, Meta, TextRecord, ToolCall, Turn, record_from_dict


def test_conversation_round_trip_with_tools_and_reasoning():
    conv = Conversation(
        system="You are terse.",
        tools=[{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
        turns=[
            Turn("user", "Weather in Paris?"),
            Turn("assistant", "", tool_calls=[ToolCall("weather", {"city": "Paris"}, id="c1")]),
            Turn("tool", '{"temp": 21}', tool_call_id="c1", name="weather"),
            Turn("assistant", "21 °C.", reasoning="The tool said 21.", weight=2.0),
        ],
        meta=Meta(id="r1", source="unit", task="tools", provenance={"teacher": "x"}),
    )
    assert record_from_dict(conv.to_dict()) == conv
    assert conv.instruction == "Weather in Paris?"
    assert conv.response == "21 °C."
    assert "weather(" in conv.all_text()


def test_text_record_round_trip():
    rec = TextRecord("Domain text.", meta=Meta(id="t"))
    assert record_from_dict(rec.to_dict()) == rec
