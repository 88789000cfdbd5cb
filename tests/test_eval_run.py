"""``run_evaluation`` and ``sftlab eval`` end to end on tiny saved models: report files, ICL row, sweep, gate."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from eval_helpers import (
    damage,
    mammal_records,
    toy_questions,
    train_on_questions,
    train_on_records,
    write_questions,
)
from sftlab.cli.main import main
from sftlab.data.io import save_jsonl_records
from sftlab.evaluate.run import run_evaluation
from sftlab.recipe.load import recipe_from_dict
from sftlab.testing import tiny_llama


def _save(model, tokenizer, folder):
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory, tokenizer):
    """base = knows the toy benchmark (60 questions); run/final = base + the mammal task; checkpoints;
    a damaged copy."""
    root = tmp_path_factory.mktemp("eval-world")
    questions = toy_questions(60)
    toy = write_questions(root / "toy.jsonl", questions)
    model = tiny_llama(tokenizer)
    train_on_questions(model, tokenizer, questions, steps=60)
    base = _save(model, tokenizer, root / "base")
    damaged = copy.deepcopy(model)
    damage(damaged)
    run = root / "run"
    records = mammal_records()
    for step in (5, 10):
        train_on_records(model, tokenizer, records, steps=25)
        _save(model, tokenizer, run / "checkpoints" / f"checkpoint-{step}")
    _save(model, tokenizer, run / "final")
    (run / "train").mkdir()
    (run / "train" / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in [{"step": 5, "loss": 2.0}, {"step": 5, "eval_loss": 1.9},
                                               {"step": 10, "loss": 1.0}, {"step": 10, "eval_loss": 1.2}])
    )  # fmt: skip
    (run / "train" / "summary.json").write_text(
        json.dumps({"best_checkpoint": str(run / "checkpoints" / "checkpoint-5"), "steps": 10,
                    "final_reason": "best checkpoint checkpoint-5 by eval loss 1.9 (lowest of 2 evaluations)"})
    )  # fmt: skip
    _save(damaged, tokenizer, root / "damaged")
    return {
        "root": root,
        "toy": toy,
        "base": base,
        "run": run,
        "damaged": root / "damaged",
        "records": records,
    }


def _recipe_dict(world, **evaluation):
    ev = {
        "metrics": ["accuracy", "macro_f1", "in_label_set"],
        "max_new_tokens": 4,
        "batch_size": 4,
        "mmlu": {"enabled": False},
        "multiple_choice": [{"name": "toy", "path": str(world["toy"])}],
        "retention": {"benchmark": "toy", "threshold": 0.15, "action": "warn"},
        "latency": {"token_counts": [2, 4, 8], "prompt_lengths": [8, 32], "repeats": 1},
        "sweep_samples": 8,
        # Symptoms and safety have their own tests (test_eval_symptoms.py); here they would only add
        # 40 general + 80 safety generations per model to every retention check.
        "symptoms": {"enabled": False},
        "safety": {"enabled": False},
    }
    ev.update(evaluation)
    return {
        "name": "eval-test",
        "output_dir": str(world["run"]),
        "model": {"name": str(world["base"])},
        "evaluation": ev,
    }


def test_run_evaluation_writes_report_with_icl_sweep_and_bad_cases(world, tmp_path):
    recipe = recipe_from_dict(_recipe_dict(world, icl_k=2))
    records = world["records"]
    report = run_evaluation(recipe, records, tmp_path / "eval", train_records=records)

    assert list(report["models"]) == ["base", "base+icl", "fine-tuned"]
    base, ft = report["models"]["base"], report["models"]["fine-tuned"]
    assert ft["overall"]["accuracy"] > base["overall"]["accuracy"]
    assert report["labels"] == ["no", "yes"]
    assert list(ft["confusions"]) == ["mammal"]  # one matrix per task, over that task's labels
    assert sum(map(sum, ft["confusions"]["mammal"]["matrix"])) == len(records)
    assert base["benchmarks"]["toy"]["accuracy"] >= 0.9
    lo, hi = base["benchmarks"]["toy"]["ci95"]
    assert lo < base["benchmarks"]["toy"]["accuracy"] <= hi and base["benchmarks"]["toy"]["chance"] == 0.25
    gate = report["retention"]["fine-tuned"]
    assert gate["benchmark"] == "toy" and gate["n"] == 60
    assert gate["status"] in ("pass", "warn", "too small") and "detectable_drop" in gate
    # the loss signal: same 123 held-out general records for both, and the paired shift with its interval
    assert base["general_loss"]["records"] == ft["general_loss"]["records"] == 123
    shift = ft["general_loss"]["shift"]
    assert shift["ci95"][0] <= shift["shift"] <= shift["ci95"][1] and shift["verdict"] in (
        "rose",
        "fell",
        "no clear change",
    )
    assert "base+icl" not in report["retention"]
    assert report["models"]["base+icl"]["icl_k"] == 2
    assert ft["loss"]["records"] == len(records) and ft["loss"]["mean"] < base["loss"]["mean"]
    assert {"k_s_per_token", "b_s", "r2", "tokens_per_s_range", "warnings"} <= set(ft["latency"])
    assert ft["latency"]["interleaved"] and ft["latency"]["r2"] is not None  # 3 output lengths

    sweep = report["sweep"]
    assert [r["step"] for r in sweep["rows"]] == [5, 10]
    assert sum(r["best"] for r in sweep["rows"]) == 1
    assert sweep["rows"][1]["eval_loss"] == 1.2
    assert sweep["final_step"] == 5 and "eval loss 1.9" in sweep["final_reason"]

    out = tmp_path / "eval"
    assert json.loads((out / "report.json").read_text())["models"].keys() == report["models"].keys()
    bad = [json.loads(line) for line in (out / "bad_cases.jsonl").read_text().splitlines()]
    assert len(bad) == sum(report["bad_cases"].values())
    assert all(b["expected"] != b["produced"] for b in bad)
    html = (out / "report.html").read_text()
    for heading in ("Task metrics", "Confusion matrices", "Benchmarks and retention", "Latency",
                    "Highest-loss records", "Bad cases", "Checkpoint sweep"):  # fmt: skip
        assert heading in html
    assert html.count("data:image/png;base64,") >= 3
    assert html.count(">Summary</a>") == 1 and "Retention gate" in html and "held-out general" in html
    assert "final/ is checkpoint-5" in html or f"checkpoint-{sweep['best_step']}, the best trade-off" in html


def test_cli_eval_fails_the_gate_for_a_damaged_model(world, tmp_path):
    recipe_path = tmp_path / "recipe.yaml"
    ev = {"latency": {"enabled": False}, "sweep": False}
    ev["retention"] = {"benchmark": "toy", "threshold": 0.15, "general_loss": {"enabled": False}}
    recipe_path.write_text(yaml.safe_dump(_recipe_dict(world, **ev)))
    data = tmp_path / "eval.jsonl"
    save_jsonl_records(world["records"], data)
    out = tmp_path / "out"
    argv = ["eval", str(recipe_path), "--models", f"base:{world['base']}", f"same:{world['base']}",
            f"damaged:{world['damaged']}", "--data", str(data), "--out", str(out),
            "evaluation.retention.action=fail"]  # fmt: skip
    assert main(argv) == 3
    report = json.loads((out / "report.json").read_text())
    assert report["retention"]["same"]["status"] == "pass"
    assert report["retention"]["damaged"]["status"] == "fail"
    assert report["retention"]["damaged"]["p_value"] < 1e-6
    assert (out / "report.html").is_file()


def test_gate_on_too_few_questions_says_so_instead_of_pass(world, tmp_path):
    """The same model against itself on 8 questions: no drop, but 8 questions cannot show a 15-point one."""
    small = write_questions(tmp_path / "small.jsonl", toy_questions(8))
    ev = {
        "latency": {"enabled": False},
        "sweep": False,
        "multiple_choice": [{"name": "small", "path": str(small)}],
    }
    ev["retention"] = {"benchmark": "small", "threshold": 0.15, "general_loss": {"enabled": False}}
    recipe = recipe_from_dict(_recipe_dict(world, **ev))
    report = run_evaluation(
        recipe,
        world["records"],
        tmp_path / "eval",
        models={"base": str(world["base"]), "same": str(world["base"])},
    )
    verdict = report["retention"]["same"]
    assert verdict["status"] == "too small" and not verdict["passed"]
    assert "too small to tell" in verdict["message"] and verdict["detectable_drop"] == pytest.approx(5 / 8)
    assert "too small to tell" in (tmp_path / "eval" / "report.html").read_text()


def test_cli_eval_rejects_stray_words_without_models(world, tmp_path):
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(_recipe_dict(world)))
    assert main(["eval", str(recipe_path), "oops"]) == 1
