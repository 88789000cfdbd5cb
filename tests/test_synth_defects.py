"""Synthesis defects found on real teacher output (issue 22), each against the scripted teacher on loopback.

A teacher that copies its template's slots or instructions, returns more items than asked for, writes
its list as "- 1. Task", answers 500 to everything, or is asked the same question twice at once: every
one of these must end counted under a reason of its own (or as one clear error), never kept or lost.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sftlab.cli.main import main
from sftlab.data.io import load_jsonl_records
from sftlab.recipe.load import recipe_from_dict
from sftlab.recipe.sections.synth import TeacherSection
from sftlab.synth import run_synth
from sftlab.synth.cache import RequestCache
from sftlab.synth.engine import ChatRequest, Teacher
from sftlab.synth.parse import parse_numbered_list
from sftlab.synth.templates import load_templates
from sftlab.synth.testing import scripted_teacher

DOC = """# Tides

The Moon's gravity pulls on the oceans and raises two bulges of water. Most coasts see two high tides a day.
Spring tides happen at new and full moon, when the Sun and the Moon line up. Neap tides come between them.

# Harbour

Fishermen land their catch at dawn. The harbour wall was built of granite in 1820. Gulls follow every boat.
"""
SLOT = re.compile(r"<[^<>]+>")


def _recipe(tmp_path: Path, url: str, pipeline: str, **synth):
    teacher = {"base_url": url, "backoff_s": 0.01, "max_backoff_s": 0.05, "concurrency": 3}
    teacher.update(synth.pop("teacher", {}))
    return recipe_from_dict(
        {"output_dir": str(tmp_path / "run"), "synth": {"pipeline": pipeline, "teacher": teacher, **synth}}
    )


def _records(summary: dict) -> list:
    return load_jsonl_records(summary["output"])


def _rejects(tmp_path: Path) -> list[dict]:
    return [json.loads(x) for x in (tmp_path / "run" / "synth" / "rejects.jsonl").read_text().splitlines()]


def _no_template_text(records) -> None:
    templates = load_templates({})
    clauses = ["reply with the new task only", "each task must be doable by a text-only assistant"]
    for rec in records:
        text = rec.all_text()
        assert not SLOT.search(text), text
        assert not any(c in text.lower() for c in clauses), text
    assert templates  # the clauses above are the built-in templates' own words


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "sea.md").write_text(DOC)
    return docs


def test_template_placeholders_and_instructions_are_rejected_as_template_echo(tmp_path):
    with scripted_teacher(None, quirks=("echo",)) as (url, _):
        si = run_synth(
            _recipe(
                tmp_path / "si",
                url,
                "self_instruct",
                self_instruct={"num_instructions": 8, "requests_per_round": 3},
            )
        )
        evol = run_synth(
            _recipe(tmp_path / "evol", url, "evol_instruct", evol_instruct={"limit": 12, "rounds": 1})
        )
        qa = run_synth(
            _recipe(
                tmp_path / "qa",
                url,
                "doc_qa",
                doc_qa={"documents": [str(_docs(tmp_path))], "chunk_chars": 400, "pairs_per_chunk": 4},
            )
        )
    assert si["rejected_by_reason"]["filter.template_echo"] >= 3  # one copied instruction per list
    assert (
        si["rejected_by_reason"]["instance.template_echo"] >= 1
    )  # <an input of that class> → <the class label>
    assert evol["rejected_by_reason"]["evolve.template_echo"] >= 1  # "... Reply with the new task only"
    assert qa["rejected_by_reason"]["pair.template_echo"] == 2  # <question> → <answer>, once per chunk
    for summary in (si, evol, qa):
        _no_template_text(_records(summary))
    echoed = [r for r in _rejects(tmp_path / "qa") if r["reason"] == "template_echo"]
    assert echoed[0]["detail"] in ("<question>", "<answer>")


def test_every_item_the_teacher_returned_is_counted_surplus_included(tmp_path):
    with scripted_teacher(None, quirks=("surplus",)) as (url, _):
        si = run_synth(
            _recipe(
                tmp_path / "si",
                url,
                "self_instruct",
                self_instruct={"num_instructions": 6, "requests_per_round": 2, "tasks_per_request": 4},
            )
        )
        qa = run_synth(
            _recipe(
                tmp_path / "qa",
                url,
                "doc_qa",
                doc_qa={"documents": [str(_docs(tmp_path))], "chunk_chars": 400, "pairs_per_chunk": 1},
            )
        )
    # Each list has 4 + 3 items: all 7 enter the filter stage, 3 of them as surplus.
    lists = si["candidates_by_stage"]["generate"] - si["rejected_by_reason"].get("generate.malformed_list", 0)
    assert si["candidates_by_stage"]["filter"] == 7 * lists
    surplus = [r for r in _rejects(tmp_path / "si") if r["reason"] == "surplus"]
    assert sum("beyond tasks_per_request" in (r.get("detail") or "") for r in surplus) == 3 * lists
    # Each chunk's reply has 1 + 2 pairs: 2 surplus per chunk, every pair counted.
    chunks = qa["candidates_by_stage"]["generate"]
    assert qa["rejected_by_reason"]["pair.surplus"] == 2 * chunks
    assert qa["candidates_by_stage"]["pair"] == 3 * chunks


@pytest.mark.parametrize("style", ["dash_numbers", "bold_numbers"])
def test_list_styles_teachers_write_are_parsed(tmp_path, style):
    with scripted_teacher(None, quirks=(style,)) as (url, _):
        summary = run_synth(
            _recipe(
                tmp_path, url, "self_instruct", self_instruct={"num_instructions": 5, "requests_per_round": 2}
            )
        )
    assert "generate.malformed_list" not in summary["rejected_by_reason"]
    assert summary["kept"] == 5


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("- 1. Write a poem.\n- 2. Sort a list", ["Write a poem.", "Sort a list"]),
        ("1) Write a poem.\n2) Sort a list", ["Write a poem.", "Sort a list"]),
        ("**1.** Write a poem.\n**2.** Sort a list", ["Write a poem.", "Sort a list"]),
        ("**1. Write a poem.**\n**2. Sort a list**", ["Write a poem.", "Sort a list"]),
        ("1 - Write a poem.\n2 - Sort a list", ["Write a poem.", "Sort a list"]),
        ("1. Write a poem.\n   - about the sea\n2. Sort a list", ["Write a poem.", "Sort a list"]),
        ("Tasks:\n- Write a poem.\n  - about the sea\n- Sort a list", ["Write a poem.", "Sort a list"]),
        ("1. Compute 7 - 2 and explain.", ["Compute 7 - 2 and explain."]),
    ],
)
def test_parse_numbered_list_styles(text, items):
    assert parse_numbered_list(text) == items


def test_teacher_failing_every_request_exits_non_zero_with_one_line(tmp_path, capsys):
    with scripted_teacher(None, fail_first=10**9, fail_status=500) as (url, state):
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(
            json.dumps(
                {
                    "output_dir": str(tmp_path / "run"),
                    "synth": {
                        "pipeline": "evol_instruct",
                        "teacher": {
                            "base_url": url,
                            "max_retries": 1,
                            "backoff_s": 0.01,
                            "max_backoff_s": 0.02,
                        },
                        "evol_instruct": {"limit": 3, "rounds": 1},
                    },
                }
            )
        )
        code = main(["data", "synth", str(recipe)])
    err = capsys.readouterr().err.strip()
    assert code == 1 and state.failed == 6  # 3 requests × (1 try + 1 retry)
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: the teacher at {url} answered none of 3 requests (http_500 × 3")
    out = tmp_path / "run" / "synth"
    assert not list(out.glob("synth*.jsonl")) and not (out / "summary.json").exists()


def test_doc_qa_record_ids_are_unique(tmp_path):
    # Overlapping chunks repeat sentences, so the teacher proposes the same pair twice.
    with scripted_teacher(None) as (url, _):
        summary = run_synth(
            _recipe(
                tmp_path,
                url,
                "doc_qa",
                doc_qa={
                    "documents": [str(_docs(tmp_path))],
                    "chunk_chars": 200,
                    "overlap_chars": 150,
                    "pairs_per_chunk": 3,
                    "judge": "none",
                },
            )
        )
    ids = [r.meta.id for r in _records(summary)]
    assert len(ids) == summary["kept"] > 0
    assert len(set(ids)) == len(ids)
    assert summary["rejected_by_reason"]["verify.duplicate"] >= 1
    assert summary["candidates_by_stage"]["verify"] == summary["kept"] + sum(
        n for k, n in summary["rejected_by_reason"].items() if k.startswith("verify.")
    )


def test_identical_requests_in_flight_are_sent_once(tmp_path):
    log = tmp_path / "requests.jsonl"
    with scripted_teacher(log, delay_s=0.3) as (url, _):
        cache = RequestCache(tmp_path / "cache.sqlite")
        try:
            teacher = Teacher(TeacherSection(base_url=url, concurrency=5), cache)
            same = [ChatRequest.user("Name a colour.", "demo", seed=1) for _ in range(4)]
            other = ChatRequest.user("Name a bird.", "demo", seed=1)
            results = teacher.complete_many([*same, other], "coalescing")
        finally:
            cache.close()
    sent = [json.loads(line)["body_sha256"] for line in log.read_text().splitlines()]
    assert len(sent) == len(set(sent)) == 2  # one request per distinct prompt
    assert all(r.ok for r in results) and len({r.text for r in results[:4]}) == 1
    assert teacher.usage.coalesced == 3 and teacher.usage.requests_sent == 2
