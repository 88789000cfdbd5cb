"""The ``review`` curation step: a person's keep / drop / edit decisions override the rules, with exact accounting."""

from __future__ import annotations

import json

import pytest

from sftlab.cli.main import main
from sftlab.curate.pipeline import curate
from sftlab.curate.steps.registry import build_steps
from sftlab.data.record import Conversation, Meta, Turn


def _record(i: int, answer: str) -> Conversation:
    turns = [Turn("user", f"What is item {i % 3}?"), Turn("assistant", answer)]
    return Conversation(turns, meta=Meta(id=f"r{i}", source="s", task="t"))


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_decisions_override_the_rules_and_every_record_is_counted(tmp_path):
    records = [_record(i, f"The answer to item {i % 3} is number {i % 3}.") for i in range(6)]
    records.append(_record(6, "ok"))  # too short for the length rule
    review = _write(
        tmp_path / "review.jsonl",
        [
            {"id": "r1", "decision": "keep", "who": "a", "when": "t", "why": ""},
            {"id": "r1", "decision": "drop", "who": "a", "when": "t", "why": "wrong"},  # last one wins
            {"id": "r3", "decision": "keep", "who": "a", "when": "t", "why": "a duplicate I want"},
            {"id": "r6", "decision": "edit", "answer": "Item six is a longer answer now.", "who": "a"},
            {"id": "gone", "decision": "drop", "who": "a"},
        ],
    )
    steps = build_steps(
        [{"type": "review", "path": str(review)}, {"type": "exact_dedup"}, {"type": "length", "min": 6}]
    )
    result = curate(records, steps, tmp_path / "out", report=False)
    assert result.records_in == 7 and result.kept + result.rejected_total == 7
    assert result.rejected["review"] == 1
    kept = [json.loads(line) for line in (tmp_path / "out" / "kept.jsonl").read_text().splitlines()]
    ids = [r["meta"]["id"] for r in kept]
    # r3 duplicates r0 but a person kept it; r5 duplicates r2; r4 is first of its kind once r1 is dropped;
    # r6 was edited, so it is long enough now
    assert ids == ["r0", "r2", "r3", "r4", "r6"]
    assert kept[2]["meta"]["extra"]["flags"] == ["exact_dedup:exact_duplicate"]
    assert kept[4]["turns"][1]["content"] == "Item six is a longer answer now."
    review_stats = result.steps[0].to_dict()
    assert review_stats["edited"] == 1 and review_stats["rejected_by_reason"] == {"review": 1}
    assert review_stats["details"]["unmatched"] == 1
    assert review_stats["details"]["applied"] == {"keep": 1, "drop": 1, "edit": 1}
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert {"step": "review", "reason": "review", "detail": "wrong"}.items() <= rejects[0].items()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "review.jsonl:1: not a JSON line"),
        ('{"decision": "drop"}', "review.jsonl:1: key 'id'"),
        ('{"id": "a", "decision": "maybe"}', "key 'decision': 'maybe' is not one of keep, drop, edit"),
        ('{"id": "a", "decision": "edit"}', "key 'answer': an edit needs the new answer"),
    ],
)
def test_a_bad_review_file_is_one_line_naming_file_and_line(tmp_path, capsys, line, message):
    (tmp_path / "review.jsonl").write_text(line + "\n")
    data = _write(
        tmp_path / "d.jsonl",
        [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}],
    )
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: x\noutput_dir: {tmp_path / 'run'}\nmodel: {{name: m}}\ndata: {{sources: [{{path: {data}}}]}}\n"
        f"curation: {{steps: [{{type: review, path: {tmp_path / 'review.jsonl'}}}]}}\n"
    )
    assert main(["data", "curate", str(recipe)]) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
