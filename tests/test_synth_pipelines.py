"""Each synth pipeline against a real HTTP teacher on 127.0.0.1: structure, filters, accounting, errors.

The scripted teacher (``sftlab.synth.testing``) is a real FastAPI app
answering by prompt kind, with planned defects (copied tasks, blocked tasks,
broken JSON, refusals, unanswerable questions) so every filter path fires.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from sftlab.cli.main import main
from sftlab.data.io import load_jsonl_records
from sftlab.recipe.load import recipe_from_dict
from sftlab.synth import run_synth
from sftlab.synth.testing import scripted_teacher

DOC = """# Tides

The Moon's gravity pulls on the oceans and raises two bulges of water. Most coasts see two high tides a day.

Spring tides happen at new and full moon, when the Sun and the Moon line up.

# Harbour

The secret ingredient of the harbour soup is kept by the cook. Fishermen land their catch at dawn.
"""


def _recipe(tmp_path: Path, base_url: str, pipeline: str, **synth):
    teacher = {"base_url": base_url, "backoff_s": 0.01, "max_backoff_s": 0.05, "concurrency": 3}
    teacher.update(synth.pop("teacher", {}))
    return recipe_from_dict(
        {
            "output_dir": str(tmp_path / "run"),
            "synth": {"pipeline": pipeline, "teacher": teacher, **synth},
        }
    )


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _check_ledger(summary: dict, out: Path) -> list:
    """Kept records and rejects on disk agree with the summary; returns the records."""
    records = load_jsonl_records(summary["output"])
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert len(records) == summary["kept"] == summary["written"]
    assert len(rejects) == summary["rejected_total"] == sum(summary["rejected_by_reason"].values())
    by_reason: dict[str, int] = {}
    for row in rejects:
        key = f"{row['stage']}.{row['reason']}"
        by_reason[key] = by_reason.get(key, 0) + 1
    assert by_reason == summary["rejected_by_reason"]
    assert json.loads((out / "summary.json").read_text()) == summary
    return records


def test_self_instruct_structure_filters_and_accounting(tmp_path):
    log = tmp_path / "requests.jsonl"
    with scripted_teacher(log) as (url, _):
        recipe = _recipe(
            tmp_path,
            url,
            "self_instruct",
            teacher={"price_input_per_1m": 2.0, "price_output_per_1m": 10.0},
            self_instruct={"num_instructions": 15, "requests_per_round": 3, "tasks_per_request": 6},
        )
        summary = run_synth(recipe)
    out = tmp_path / "run" / "synth"
    records = _check_ledger(summary, out)
    assert summary["kept"] == 15
    reasons = summary["rejected_by_reason"]
    # The teacher copies an example into every list: each copy is dropped as too similar.
    assert reasons["filter.too_similar"] >= summary["candidates_by_stage"]["generate"]
    assert reasons.get("instance.malformed_json", 0) >= 1
    malformed = [
        r
        for r in (json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines())
        if r["reason"] == "malformed_json"
    ]
    assert malformed[0]["raw"].startswith('{"input": "half an object"')  # the teacher's text is kept
    # Every candidate instruction that passed the filters ends kept or rejected (nothing vanishes).
    passed_filter = summary["candidates_by_stage"]["filter"] - sum(
        v for k, v in reasons.items() if k.startswith("filter.") and k != "filter.surplus"
    )
    assert passed_filter - reasons.get("filter.surplus", 0) == summary["candidates_by_stage"]["classify"]
    assert summary["candidates_by_stage"]["instance"] == summary["kept"] + sum(
        v for k, v in reasons.items() if k.startswith("instance.")
    )
    # Classification tasks went output-first, others input-first.
    for rec in records:
        prov = rec.meta.provenance
        assert prov["pipeline"] == "self_instruct" and prov["teacher"] == "default"
        assert len(prov["example_ids"]) >= 3 and isinstance(prov["seed"], int)
        template = (
            "self_instruct_instance_output" if prov["is_classification"] else "self_instruct_instance_input"
        )
        assert template in prov["templates"]
        assert prov["is_classification"] == rec.instruction.startswith("Classify")
        assert rec.meta.extra["instruction"] in rec.instruction
        assert rec.response
    assert any(r.meta.provenance["is_classification"] for r in records)
    # Later rounds show generated tasks as examples.
    assert any(any(not i.startswith("seed_") for i in r.meta.provenance["example_ids"]) for r in records)
    # Usage adds up to what the server saw; cost at the configured prices.
    usage = summary["usage"]
    assert usage["requests_sent"] == len(_log(log)) == sum(usage["requests_by_template"].values())
    assert usage["cost"] == pytest.approx(
        (usage["prompt_tokens"] * 2 + usage["completion_tokens"] * 10) / 1e6
    )
    assert usage["prompt_tokens"] > 0 and usage["cache_hits"] == 0


def test_rerun_is_reproducible_from_the_cache(tmp_path):
    log = tmp_path / "requests.jsonl"
    with scripted_teacher(log) as (url, _):
        recipe = _recipe(
            tmp_path, url, "self_instruct", self_instruct={"num_instructions": 6, "requests_per_round": 2}
        )
        first = run_synth(recipe)
        records_first = Path(first["output"]).read_text()
        sent = len(_log(log))
        second = run_synth(recipe)
    assert len(_log(log)) == sent  # nothing asked twice
    assert second["usage"]["requests_sent"] == 0 and second["usage"]["cache_hits"] == sent
    assert Path(second["output"]).read_text() == records_first
    assert second["rejected_by_reason"] == first["rejected_by_reason"]


def test_evol_instruct_rounds_and_failed_evolutions(tmp_path):
    log = tmp_path / "requests.jsonl"
    with scripted_teacher(log) as (url, _):
        recipe = _recipe(tmp_path, url, "evol_instruct", evol_instruct={"limit": 20, "rounds": 2})
        summary = run_synth(recipe)
    out = tmp_path / "run" / "synth"
    records = _check_ledger(summary, out)
    reasons = summary["rejected_by_reason"]
    assert (
        summary["candidates_by_stage"]["evolve"] == 40
    )  # 20 prompts × 2 rounds (failed ones retry as parents)
    for reason in ("evolve.refusal", "evolve.no_change", "evolve.copied_template"):
        assert reasons.get(reason, 0) >= 1, reason
    assert summary["candidates_by_stage"]["answer"] == summary["kept"]
    ops = {"add_constraints", "deepen", "concretize", "increase_reasoning", "breadth"}
    for rec in records:
        prov = rec.meta.provenance
        assert prov["operation"] in ops and f"evol_{prov['operation']}" in prov["templates"]
        assert prov["generation"] in (1, 2) and prov["parent_id"]
        assert "#New Task#" not in rec.instruction and "sorry" not in rec.instruction.lower()
    # A second-generation record's parent is a first-generation record of this run.
    ids = {r.meta.id for r in records}
    second = [r for r in records if r.meta.provenance["generation"] == 2]
    assert second and all(r.meta.provenance["parent_id"] in ids for r in second)


def test_evol_instruct_reads_inputs_from_a_data_file(tmp_path):
    inputs = tmp_path / "prompts.jsonl"
    inputs.write_text(
        "\n".join(
            json.dumps({"instruction": f"Describe the history of town number {i}.", "output": "x"})
            for i in range(3)
        )
    )
    with scripted_teacher(None) as (url, _):
        recipe = _recipe(
            tmp_path,
            url,
            "evol_instruct",
            evol_instruct={"inputs": str(inputs), "rounds": 1},
            format="alpaca",
        )
        summary = run_synth(recipe)
    assert summary["candidates_by_stage"]["evolve"] == 3
    rows = [json.loads(line) for line in Path(summary["output"]).read_text().splitlines()]
    assert summary["output"].endswith(".alpaca.jsonl") and len(rows) == summary["kept"]
    assert all(set(rows[0]) >= {"instruction", "output"} for _ in rows)


@pytest.mark.parametrize("judge", ["similarity", "teacher"])
def test_doc_qa_back_translation_keeps_only_agreeing_pairs(tmp_path, judge):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "sea.md").write_text(DOC)
    (docs / "broken.md").write_text("MALFORMED teacher output expected for this one.")
    (docs / "partial.txt").write_text("PARTIAL output: the first pair survives. The second is cut off.")
    log = tmp_path / "requests.jsonl"
    with scripted_teacher(log) as (url, _):
        recipe = _recipe(
            tmp_path,
            url,
            "doc_qa",
            doc_qa={
                "documents": [str(docs)],
                "chunk_chars": 300,
                "overlap_chars": 0,
                "judge": judge,
                "pairs_per_chunk": 3,
            },
        )
        summary = run_synth(recipe)
    records = _check_ledger(summary, tmp_path / "run" / "synth")
    reasons = summary["rejected_by_reason"]
    assert reasons["generate.malformed_json"] == 1  # broken.md
    disagree = "verify.answers_disagree" if judge == "similarity" else "verify.judge_disagrees"
    assert reasons[disagree] == 1  # the "secret" question the teacher cannot answer closed-book
    assert summary["candidates_by_stage"]["verify"] == summary["kept"] + 1
    assert (
        summary["kept"] == 5
    )  # sea.md: 3 (Tides) + 1 (Harbour, minus the secret) + 1 recovered from partial.txt
    answers = {r.response for r in records}
    assert "PARTIAL output: the first pair survives." in answers
    assert not any("secret" in a for a in answers)
    for rec in records:
        prov = rec.meta.provenance
        assert prov["parent_id"] and prov["document"].endswith((".md", ".txt"))
        assert prov["judge"] == judge and ("doc_qa_judge" in prov["templates"]) == (judge == "teacher")
    assert summary["usage"]["requests_by_template"].get("doc_qa_judge", 0) == (6 if judge == "teacher" else 0)


def test_429_storm_is_retried_and_succeeds(tmp_path):
    log = tmp_path / "requests.jsonl"
    with scripted_teacher(log, fail_first=7) as (url, state):
        recipe = _recipe(
            tmp_path,
            url,
            "evol_instruct",
            teacher={"max_retries": 8, "concurrency": 4},
            evol_instruct={"limit": 5, "rounds": 1},
        )
        summary = run_synth(recipe)
    assert state.failed == 7
    assert summary["usage"]["retries"] == 7 and summary["usage"]["failed_requests"] == {}
    assert summary["candidates_by_stage"]["evolve"] == 5
    assert not any("request_failed" in k for k in summary["rejected_by_reason"])


def test_items_failing_after_max_retries_are_counted_not_lost(tmp_path):
    # One worker: the first two requests use up their three attempts each on 429s, the rest are answered.
    with scripted_teacher(None, fail_first=6) as (url, _):
        recipe = _recipe(
            tmp_path,
            url,
            "evol_instruct",
            teacher={"max_retries": 2, "concurrency": 1},
            evol_instruct={"limit": 4, "rounds": 1},
        )
        summary = run_synth(recipe)
    assert summary["rejected_by_reason"]["evolve.request_failed"] == 2
    assert summary["candidates_by_stage"]["evolve"] == 4
    assert summary["usage"]["failed_requests"] == {"http_429": 2} and summary["usage"]["retries"] == 4
    rejects = [json.loads(x) for x in (tmp_path / "run" / "synth" / "rejects.jsonl").read_text().splitlines()]
    failed = [r for r in rejects if r["reason"] == "request_failed"]
    assert {r["item"]["parent_id"] for r in failed} == {"seed_001", "seed_002"}
    assert all(r["detail"] == "http_429" for r in failed)


def test_endpoint_down_is_one_line_error_and_writes_nothing(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"output_dir: {tmp_path / 'run'}\n"
        "synth:\n  pipeline: self_instruct\n"
        f"  teacher: {{base_url: 'http://127.0.0.1:{port}/v1', max_retries: 1, backoff_s: 0.01}}\n"
    )
    code = main(["data", "synth", str(recipe)])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert len(err.splitlines()) == 1 and err.startswith(
        "error: cannot reach the teacher at http://127.0.0.1:"
    )
    assert "synth.teacher.base_url" in err
    out = tmp_path / "run" / "synth"
    assert not list(out.glob("synth*.jsonl")) and not (out / "summary.json").exists()
    assert not (out / "rejects.jsonl").exists()


def test_cli_prints_summary_and_json(tmp_path, capsys):
    with scripted_teacher(None) as (url, _):
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(
            f"output_dir: {tmp_path / 'run'}\nsynth:\n  pipeline: evol_instruct\n"
            f"  teacher: {{base_url: '{url}'}}\n  evol_instruct: {{limit: 3, rounds: 1}}\n"
        )
        assert main(["data", "synth", str(recipe), "synth.teacher.concurrency=2"]) == 0
        text = capsys.readouterr().out
        assert "evol_instruct: kept" in text and "requests:" in text
        assert main(["data", "synth", str(recipe), "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
    assert summary["usage"]["requests_sent"] == 0 and summary["usage"]["cache_hits"] > 0


def test_unknown_format_and_bad_template_fail_before_any_request(tmp_path):
    log = tmp_path / "requests.jsonl"
    with scripted_teacher(log) as (url, _):
        with pytest.raises(Exception, match="unknown data format 'parquett'"):
            run_synth(_recipe(tmp_path, url, "self_instruct", format="parquett"))
        with pytest.raises(Exception, match="unknown template id"):
            run_synth(_recipe(tmp_path, url, "self_instruct", prompts={"nope": "x.txt"}))
    assert not log.exists() or log.read_text() == ""
