"""Formats and containers: real third-party-style files in, canonical records, and back without loss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sftlab.data.io import load_jsonl_records, read_records, read_source, save_jsonl_records, write_records
from sftlab.data.record import Conversation, Meta, TextRecord, ToolCall, Turn
from sftlab.errors import DataError
from sftlab.recipe.sections.data import SourceSection

DATA = Path(__file__).parent / "data"


def content_of(records):
    """Everything except meta: what a model would see."""
    out = []
    for r in records:
        d = r.to_dict()
        d.pop("meta", None)
        out.append(d)
    return out


@pytest.mark.parametrize(
    ("name", "fmt", "n"),
    [
        ("sharegpt_zh.jsonl", "sharegpt", 3),
        ("messages_tools.jsonl", "messages", 3),
        ("alpaca_history.json", "alpaca", 3),
    ],
)
def test_detects_format_and_round_trips_through_every_format(tmp_path, name, fmt, n):
    stream = read_records(DATA / name)
    original = list(stream)
    assert stream.format == fmt and len(original) == n and stream.stats.kept == n
    targets = ["messages", "sharegpt", "sftlab"] + (["alpaca"] if fmt == "alpaca" else [])
    for target in targets:
        for ext in ("jsonl", "json", "parquet", "csv"):
            out = tmp_path / f"{target}.{ext}"
            stats = write_records(original, out, format=target)
            assert stats.written == n and not stats.skipped, (target, ext, stats)
            back = list(read_records(out))
            expected = content_of(original)
            if stats.dropped:  # only what the target format declared it cannot hold may differ
                assert set(stats.dropped) == {"reasoning"}
                for d in expected:
                    for t in d["turns"]:
                        t.pop("reasoning", None)
            assert content_of(back) == expected, (target, ext)
            assert [r.meta.id for r in back] == [r.meta.id for r in original]
            extras = [r.meta.extra for r in original]
            if ext == "csv" and target != "sftlab":  # CSV has no types: extra columns come back as text
                extras = [{k: str(v) for k, v in e.items()} for e in extras]
            assert [r.meta.extra for r in back] == extras, (target, ext)


def test_sharegpt_chinese_with_tool_call_is_read_exactly():
    recs = list(read_records(DATA / "sharegpt_zh.jsonl"))
    first, tool = recs[0], recs[1]
    assert first.system == "你是一个乐于助人的助手。"
    assert [t.role for t in first.turns] == ["user", "assistant", "user", "assistant"]
    assert first.turns[3].content == "最早可以追溯到春秋战国时期，明朝时大规模重修。"
    assert first.meta.id == "zh-001" and first.meta.extra == {"lang": "zh"}
    assert tool.turns[1].tool_calls == [ToolCall("get_weather", {"city": "北京"})]
    assert tool.turns[2].role == "tool" and tool.tools[0]["name"] == "get_weather"


def test_openai_messages_tool_calls_reasoning_and_parts():
    recs = list(read_records(DATA / "messages_tools.jsonl"))
    a = recs[0]
    assert a.system.startswith("You are a travel assistant")
    calls = a.turns[1].tool_calls
    assert [(c.id, c.arguments["city"]) for c in calls] == [("call_a1", "Paris"), ("call_b2", "Tokyo")]
    assert a.turns[1].content == "" and [t.tool_call_id for t in a.turns[2:4]] == ["call_a1", "call_b2"]
    b = recs[1]
    assert b.turns[0].content == "Convert 3 miles to kilometres."
    assert b.turns[1].content == "Let me compute that." and b.turns[1].tool_calls[0].name == "convert_units"
    assert b.turns[3].reasoning.startswith("1 mile = 1.609 km")
    assert b.meta.extra == {"split": "train"} and b.meta.id == "messages_tools-2"
    assert recs[2].turns[1].weight == 1.0


def test_alpaca_history_input_and_system():
    recs = list(read_records(DATA / "alpaca_history.json"))
    assert recs[0].turns[0].content.startswith("Summarise the text in one sentence.\nThe mitochondrion")
    assert recs[0].system == "You are a concise assistant."
    assert [t.content for t in recs[1].turns][:2] == ["What do mitochondria do?", recs[1].turns[1].content]
    assert len(recs[1].turns) == 6 and recs[1].meta.extra == {"category": "biology"}
    # a multi-turn record written as Alpaca keeps the earlier exchanges in history
    row = json.loads(json.dumps(__import__("sftlab.data.formats.alpaca", fromlist=["dump"]).dump(recs[1])[0]))
    assert row["history"][1] == ["Where are they found?", "In most eukaryotic cells."]


def test_what_a_format_cannot_hold_is_counted_not_silently_lost(tmp_path):
    recs = list(read_records(DATA / "messages_tools.jsonl"))
    stats = write_records(recs, tmp_path / "a.jsonl", format="alpaca")
    assert stats.written == 1 and stats.skipped == {"tool_calls": 2}
    assert stats.records_in == stats.written + sum(stats.skipped.values())
    stats = write_records(recs, tmp_path / "s.jsonl", format="sharegpt")
    assert stats.written == 3 and stats.dropped == {"reasoning": 1}
    back = list(read_records(tmp_path / "s.jsonl"))
    assert back[1].turns[3].reasoning is None and back[1].turns[1].tool_calls[0].id == "call_c3"
    stats = write_records(recs, tmp_path / "t.jsonl", format="text")
    assert stats.written == 0 and stats.skipped == {"conversation_not_text": 3}


def test_cot_split_only_when_the_mapping_asks():
    plain = list(read_records(DATA / "cot.jsonl"))
    assert plain[0].turns[1].reasoning is None and plain[0].turns[1].content.startswith("<think>")
    split = list(read_records(DATA / "cot.jsonl", mapping={"reasoning_tag": "think"}))
    assert split[0].turns[1].reasoning == "Speed is distance over time: 120 / 1.5 = 80."
    assert split[0].turns[1].content == "The average speed is 80 km/h."
    assert split[1].turns[1].content == "9.9 is larger."
    assert split[2].turns[1].reasoning is None and split[2].turns[1].content == "Red."


def test_llama_factory_mapping_columns_and_tags(tmp_path):
    p = tmp_path / "lf.jsonl"
    p.write_text(
        json.dumps({"q": "2+2?", "a": "4", "hist": [["1+1?", "2"]], "sys": "math"})
        + "\n"
        + json.dumps({"q": "3+3?", "a": "6"})
        + "\n"
    )
    recs = list(read_records(p, mapping={"prompt": "q", "response": "a", "history": "hist", "system": "sys"}))
    assert [t.content for t in recs[0].turns] == ["1+1?", "2", "2+2?", "4"] and recs[0].system == "math"
    p2 = tmp_path / "tags.jsonl"
    conv = [{"speaker": "Human", "text": "hi"}, {"speaker": "Bot", "text": "hello"}]
    p2.write_text(json.dumps({"dialog": conv}) + "\n")
    nested = {
        "formatting": "sharegpt",
        "columns": {"messages": "dialog"},
        "tags": {"role_tag": "speaker", "content_tag": "text", "user_tag": "Human", "assistant_tag": "Bot"},
    }
    rec = next(iter(read_records(p2, mapping=nested)))
    assert [(t.role, t.content) for t in rec.turns] == [("user", "hi"), ("assistant", "hello")]
    with pytest.raises(DataError, match="did you mean 'prompt'"):
        read_records(p, mapping={"promt": "q"})


def test_read_source_sets_source_task_and_limit():
    src = SourceSection(path=str(DATA / "sharegpt_zh.jsonl"), task="chat", limit=2)
    recs = list(read_source(src))
    assert (
        len(recs) == 2
        and {r.meta.source for r in recs} == {"sharegpt_zh"}
        and {r.meta.task for r in recs} == {"chat"}
    )
    named = list(read_source(SourceSection(path=str(DATA / "cot.jsonl"), name="cot-math")))
    assert {r.meta.source for r in named} == {"cot-math"}


def test_text_txt_paragraphs_and_text_column(tmp_path):
    recs = list(read_records(DATA / "text_corpus.txt"))
    assert [r.text.splitlines()[0] for r in recs] == [
        "The quick brown fox jumps over the lazy dog.",
        "A second paragraph about gradient descent,",
        "Third paragraph after two blank lines.",
    ]
    assert [r.meta.id for r in recs] == ["text_corpus-1", "text_corpus-4", "text_corpus-8"]
    write_records(recs, tmp_path / "t.parquet", format="text")
    assert content_of(read_records(tmp_path / "t.parquet")) == content_of(recs)


def test_detection_failure_lists_keys(tmp_path):
    p = tmp_path / "odd.jsonl"
    p.write_text('{"question": "?", "answer": "!"}\n')
    with pytest.raises(DataError, match=r"\['answer', 'question'\]"):
        list(read_records(p))
    assert [
        r.turns[0].content for r in read_records(p, mapping={"prompt": "question", "response": "answer"})
    ] == ["?"]


def test_hf_dataset_on_disk_and_offline_hub(tmp_path, monkeypatch):
    import datasets

    rows = [json.loads(line) for line in (DATA / "messages_tools.jsonl").read_text().splitlines()]
    folder = tmp_path / "hf"
    datasets.Dataset.from_list(
        [{"messages": rows[0]["messages"]}, {"messages": rows[2]["messages"]}]
    ).save_to_disk(str(folder))
    recs = list(read_records(folder))
    assert (
        len(recs) == 2
        and recs[1].turns[1].weight == 1.0
        and recs[0].turns[1].tool_calls[1].arguments == {"city": "Tokyo", "unit": "celsius"}
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    with pytest.raises(DataError) as err:
        list(read_records("nobody-sftlab/not-a-dataset"))
    assert "\n" not in str(err.value) and "nobody-sftlab/not-a-dataset" in str(err.value)


def test_canonical_jsonl_between_stages(tmp_path):
    recs = list(read_records(DATA / "messages_tools.jsonl", source_name="tb")) + [
        TextRecord("plain", Meta(id="t1"))
    ]
    assert save_jsonl_records(recs, tmp_path / "x.sftlab.jsonl") == 4
    assert load_jsonl_records(tmp_path / "x.sftlab.jsonl") == recs
    assert list(read_records(tmp_path / "x.sftlab.jsonl")) == recs


# ---------------------------------------------------------------- property: round trip identity

_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30).filter(
    lambda s: s.strip()
)
_args = st.dictionaries(st.sampled_from(["a", "city", "n"]), st.one_of(st.integers(-5, 5), _text), max_size=2)


@st.composite
def conversations(draw, tools: bool):
    turns: list[Turn] = []
    for _ in range(draw(st.integers(1, 3))):
        turns.append(Turn("user", draw(_text)))
        if tools and draw(st.booleans()):
            calls = [
                ToolCall(draw(st.sampled_from(["f", "g"])), draw(_args), id=f"c{i}")
                for i in range(draw(st.integers(1, 2)))
            ]
            turns.append(Turn("assistant", draw(st.sampled_from(["", "calling"])), tool_calls=calls))
            turns += [Turn("tool", draw(_text), tool_call_id=c.id) for c in calls]
        turns.append(Turn("assistant", draw(_text), reasoning=draw(st.none() | _text) if tools else None))
    return Conversation(
        turns=turns,
        system=draw(st.none() | _text),
        meta=Meta(
            id=draw(st.uuids()).hex,
            extra=draw(st.dictionaries(st.sampled_from(["lang", "score"]), _text, max_size=2)),
        ),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recs=st.lists(conversations(tools=True), min_size=1, max_size=4))
def test_property_messages_and_canonical_round_trip(tmp_path, recs):
    for fmt in ("messages", "sftlab"):
        path = tmp_path / f"p.{fmt}.jsonl"
        write_records(recs, path, format=fmt)
        assert list(read_records(path)) == recs


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recs=st.lists(conversations(tools=False), min_size=1, max_size=4))
def test_property_alpaca_and_sharegpt_round_trip(tmp_path, recs):
    for fmt in ("alpaca", "sharegpt"):
        path = tmp_path / f"p.{fmt}.jsonl"
        stats = write_records(recs, path, format=fmt)
        assert stats.written == len(recs) and not stats.dropped
        assert list(read_records(path)) == recs


def test_parquet_column_of_mixed_types_becomes_text_not_an_error(tmp_path):
    recs = [
        Conversation(
            [Turn("user", "q"), Turn("assistant", "a")],
            meta=Meta(id=str(i), extra={"score": i if i < 2100 else "high"}),
        )
        for i in range(2200)
    ]
    assert write_records(recs, tmp_path / "m.parquet").written == 2200  # crosses a 2048-row batch
    back = list(read_records(tmp_path / "m.parquet"))
    assert back[0].meta.extra == {"score": "0"} and back[-1].meta.extra == {"score": "high"}
