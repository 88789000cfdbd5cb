"""LLaMA-Factory's own demo data, as its users have it: every SFT dataset of its real
``dataset_info.json`` reads whole, comes back unchanged through other formats, and renders
with Qwen3's real template; every other entry is refused in one line.

The files come from LLaMA-Factory's source package (llamafactory 0.9.5, Apache-2.0), which
``make venv`` downloads and unpacks into ``.venv/assets``; nobody here wrote them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sftlab.data.io import read_records, write_records
from sftlab.data.llamafactory import resolve
from sftlab.data.sources import read_sources
from sftlab.errors import DataError
from sftlab.recipe import recipe_from_dict

LF = Path(sys.prefix) / "assets" / "llamafactory-0.9.5" / "data"
INFO = LF / "dataset_info.json"
pytestmark = pytest.mark.skipif(
    not INFO.is_file(), reason="run `make venv` to fetch LLaMA-Factory's demo data"
)

SFT = ["alpaca_en_demo", "alpaca_zh_demo", "glaive_toolcall_en_demo", "glaive_toolcall_zh_demo", "identity"]


def _entries() -> dict:
    return json.loads(INFO.read_text(encoding="utf-8"))


def _sources(**extra):
    recipe = recipe_from_dict({"data": {"sources": [{"path": str(INFO), "dataset": SFT, **extra}]}})
    return recipe.data


def test_every_sft_dataset_reads_whole(tmp_path):
    sources = read_sources(_sources(), tmp_path)
    records = list(sources)
    step = sources.step_stats()
    lines = sum(len(json.loads((LF / _entries()[name]["file_name"]).read_text())) for name in SFT)
    assert step.records_in == lines == len(records) == 2690
    assert step.rejected_total == 0
    # two Chinese tool-call conversations write a call as text and then give its result: the exchange
    # before that turn is kept, and said so
    assert step.details["repaired"] == {"keep_valid_prefix": 2}
    assert {r.meta.source for r in records} == set(SFT)
    calls = sum(bool(t.tool_calls) for r in records for t in r.turns)
    assert calls > 300 and all(r.tools for r in records if any(t.tool_calls for t in r.turns))


def test_every_other_entry_is_refused_in_one_line():
    refused = [name for name in _entries() if name not in SFT and name != "c4_demo"]
    assert len(refused) > 60
    for name in refused:
        with pytest.raises(DataError) as err:
            resolve(str(INFO), name)
        message = str(err.value)
        assert "\n" not in message and name in message, message
    assert resolve(str(INFO), "c4_demo").format == "text"  # pre-training text reads as text


@pytest.mark.parametrize("name", SFT)
def test_round_trip_through_messages_gives_the_rows_back(tmp_path, name):
    where = resolve(str(INFO), name)
    original = json.loads(Path(where.path).read_text(encoding="utf-8"))
    stream = read_records(where.path, format=where.format, mapping=where.mapping, on_error="skip")
    records = list(stream)
    assert stream.stats.rejected <= 2  # the two conversations with a call written as text (see above)
    kept = {r.meta.id for r in records}
    stem = Path(where.path).stem
    original = [row for i, row in enumerate(original, 1) if f"{stem}-{i}" in kept]
    write_records(records, tmp_path / "m.jsonl", format="messages")
    middle = list(read_records(tmp_path / "m.jsonl", format="messages"))
    write_records(middle, tmp_path / "back.json", format=where.format if where.format != "auto" else "alpaca")
    back = json.loads((tmp_path / "back.json").read_text(encoding="utf-8"))
    for row in back:
        row.pop("id")  # the one field sftlab adds: its record identity
    assert back == original


def test_identity_variables_are_filled_by_substitute(tmp_path):
    data = recipe_from_dict(
        {
            "data": {
                "sources": [
                    {
                        "path": str(INFO),
                        "dataset": "identity",
                        "substitute": {"name": "Ledger", "author": "Acme"},
                    }
                ]
            }
        }
    ).data
    records = list(read_sources(data, tmp_path))
    texts = [t.content for r in records for t in r.turns]
    assert len(records) == 91
    assert not any("{{" in t for t in texts)
    # 85 of its 91 answers carry {{name}} (77) or {{author}} (60)
    assert sum("Ledger" in t or "Acme" in t for t in texts) == 85


def test_tool_calls_render_with_qwen3s_own_template(qwen3_tokenizer, tmp_path):
    from sftlab.recipe.sections.render import RenderSection
    from sftlab.render.dataset import tokenize_records

    data = recipe_from_dict(
        {"data": {"sources": [{"path": str(INFO), "dataset": "glaive_toolcall_en_demo"}]}}
    ).data
    records = list(read_sources(data, tmp_path))
    cfg = RenderSection(max_length=16384)  # one conversation pastes a 6,000-character text twice
    result = tokenize_records(records, qwen3_tokenizer, cfg)
    answers = sum(t.role == "assistant" for r in records for t in r.turns)
    assert result.stats["records"] == len(records) == 300
    assert result.stats["dropped_too_long"] == 0 and result.stats["no_trained_tokens"] == 0
    # Qwen3's template rewrites history (it drops earlier think blocks), so every assistant turn is
    # one sample rendered with the context inference gives it
    assert result.stats["samples"] == answers
    end = qwen3_tokenizer.convert_tokens_to_ids("<|im_end|>")
    for sample in result.samples[:50]:
        trained = [t for t, label in zip(sample.input_ids, sample.labels, strict=True) if label != -100]
        assert trained[-1] == end  # every sample trains its end-of-turn token
