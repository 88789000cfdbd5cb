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
    """base = knows the toy benchmark; run/final = base + the mammal task; checkpoints; a damaged copy."""
    root = tmp_path_factory.mktemp("eval-world")
    questions = toy_questions()
    toy = write_questions(root / "toy.jsonl", questions)
    model = tiny_llama(tokenizer)
    train_on_questions(model, tokenizer, questions)
    base = _save(model, tokenizer, root / "base")
    damaged = copy.deepcopy(model)
    damage(damaged)
    run = root / "run"
    records = mammal_records()
    for step in (5, 10):
        train_on_records(model, tokenizer, records, steps=5)
        _save(model, tokenizer, run / "checkpoints" / f"checkpoint-{step}")
    _save(model, tokenizer, run / "final")
    (run / "train").mkdir()
    (run / "train" / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in [{"step": 5, "loss": 2.0}, {"step": 5, "eval_loss": 1.9},
                                               {"step": 10, "loss": 1.0}, {"step": 10, "eval_loss": 1.2}])
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
        "retention": {"threshold": 0.05, "action": "warn"},
        "latency": {"token_counts": [2, 4, 8], "prompt_lengths": [8, 32], "repeats": 1},
        "sweep_samples": 8,
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
    assert sum(map(sum, ft["confusion"]["matrix"])) == len(records)
    assert base["benchmarks"]["toy"]["accuracy"] >= 0.75
    assert report["retention"]["fine-tuned"]["benchmark"] == "toy"
    assert report["retention"]["fine-tuned"]["status"] in ("pass", "warn")
    assert "base+icl" not in report["retention"]
    assert report["models"]["base+icl"]["icl_k"] == 2
    assert ft["loss"]["records"] == len(records) and ft["loss"]["mean"] < base["loss"]["mean"]
    assert {"k_s_per_token", "b_s", "r2"} <= set(ft["latency"])

    sweep = report["sweep"]
    assert [r["step"] for r in sweep["rows"]] == [5, 10]
    assert sum(r["best"] for r in sweep["rows"]) == 1
    assert sweep["rows"][1]["eval_loss"] == 1.2

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


def test_cli_eval_fails_the_gate_for_a_damaged_model(world, tmp_path):
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(_recipe_dict(world, latency={"enabled": False}, sweep=False)))
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
    assert (out / "report.html").is_file()


def test_cli_eval_rejects_stray_words_without_models(world, tmp_path):
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(_recipe_dict(world)))
    assert main(["eval", str(recipe_path), "oops"]) == 1
