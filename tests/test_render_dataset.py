"""tokenize_records: accounting, on_empty_labels, parallel processes, and the fingerprint cache."""

from __future__ import annotations

import pytest

from sftlab.data.record import Conversation, Meta, TextRecord, Turn
from sftlab.recipe.sections.render import RenderSection
from sftlab.render import EmptyLabelsError, tokenize_records


def records(n: int = 24) -> list:
    out = []
    for i in range(n):
        turns = [Turn("user", f"Tell me about item {i}."), Turn("assistant", "It is fine. " * (1 + i % 5))]
        out.append(Conversation(turns=turns, meta=Meta(id=f"r{i}", source="s", task="t")))
    out.append(TextRecord("Plain text for pre-training.", meta=Meta(id="text")))
    return out


def test_stats_drop_long_and_empty(tokenizer):
    recs = records(6)
    recs[0].turns[1].content = "long " * 200
    recs[1].turns[1].weight = 0
    data = tokenize_records(
        recs, tokenizer, RenderSection(max_length=64, truncation="drop_record", on_empty_labels="drop")
    )
    st = data.stats
    assert st["records"] == 7 and st["samples"] == 5
    assert st["dropped_too_long"] == 1 and st["no_trained_tokens"] == 1
    assert st["dropped_ids"] == {"dropped_too_long": ["r0"], "no_trained_tokens": ["r1"]}
    assert 0 < st["trained_token_share"] < 1
    assert [s.id for s in data.samples] == ["r2", "r3", "r4", "r5", "text"]
    with pytest.raises(EmptyLabelsError, match="r1"):
        tokenize_records(recs, tokenizer, RenderSection(max_length=64, truncation="drop_record"))


def test_parallel_equals_serial_and_cache_is_reused(tokenizer, tmp_path):
    recs = records()
    serial = tokenize_records(recs, tokenizer, RenderSection(), num_proc=1)
    parallel = tokenize_records(recs, tokenizer, RenderSection(), num_proc=2, cache_dir=tmp_path)
    assert [s.input_ids for s in parallel.samples] == [s.input_ids for s in serial.samples]
    assert [s.labels for s in parallel.samples] == [s.labels for s in serial.samples]
    assert not parallel.from_cache
    again = tokenize_records(recs, tokenizer, RenderSection(), cache_dir=tmp_path)
    assert again.from_cache and again.fingerprint == parallel.fingerprint
    assert [s.to_dict() for s in again.samples] == [s.to_dict() for s in serial.samples]
    assert again.stats == parallel.stats
    # a setting that changes labels, or a changed record, is a new cache entry
    other = tokenize_records(recs, tokenizer, RenderSection(train_on="everything"), cache_dir=tmp_path)
    assert not other.from_cache and other.fingerprint != parallel.fingerprint
    recs[0].turns[1].content = "Changed."
    changed = tokenize_records(recs, tokenizer, RenderSection(), cache_dir=tmp_path)
    assert not changed.from_cache
