"""``sftlab eval`` on OpenAI-compatible endpoints: a tiny trained run served by ``sftlab serve`` on loopback,
compared with the same run in-process (deployment parity), and with a different model behind an endpoint."""

from __future__ import annotations

import json

import pytest
import yaml

from eval_helpers import mammal_records, toy_questions, train_on_records, write_questions
from sftlab.cli.main import main
from sftlab.data.io import save_jsonl_records
from sftlab.errors import SftlabError
from sftlab.evaluate.run import run_evaluation
from sftlab.recipe.load import recipe_from_dict
from sftlab.serve import create_app
from sftlab.serve.testing import running_server
from sftlab.testing import tiny_llama

KEY = "sk-h2-secret-7f3a9c"
KEY_ENV = "SFTLAB_TEST_ENDPOINT_KEY"


def _save(model, tokenizer, folder):
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory, tokenizer):
    """base = random tiny Llama; run/final = base trained on the mammal task; both served on loopback."""
    root = tmp_path_factory.mktemp("endpoint-world")
    model = tiny_llama(tokenizer)
    base = _save(model, tokenizer, root / "base")
    train_on_records(model, tokenizer, mammal_records(), steps=80)
    run = root / "run"
    _save(model, tokenizer, run / "final")
    toy = write_questions(root / "toy.jsonl", toy_questions(12))
    served_run = create_app(str(run), api_key=KEY, max_batch=4, served_name="run")
    served_base = create_app(str(base), max_batch=4, served_name="base")
    with running_server(served_run) as run_url, running_server(served_base) as base_url:
        yield {"root": root, "base": base, "run": run, "toy": toy, "run_url": run_url, "base_url": base_url}


def _recipe(world, **evaluation):
    ev = {
        "metrics": ["accuracy", "exact_match"],
        "max_new_tokens": 6,
        "batch_size": 4,
        "mmlu": {"enabled": False},
        "multiple_choice": [{"name": "toy", "path": str(world["toy"])}],
        "retention": {"benchmark": "toy", "threshold": 0.15, "general_loss": {"enabled": False}},
        "latency": {"token_counts": [2, 4], "prompt_lengths": [8], "repeats": 2, "warmup": 1,
                    "endpoint_prompts": 3},
        "sweep": False,
        "endpoints": [{"label": "served", "url": world["run_url"], "model": "run", "api_key_env": KEY_ENV}],
    }  # fmt: skip
    ev.update(evaluation)
    return {"name": "endpoint-test", "output_dir": str(world["run"]), "model": {"name": str(world["base"])},
            "evaluation": ev}  # fmt: skip


def test_cli_parity_of_a_served_run_is_identical_and_the_key_is_never_written(
    world, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv(KEY_ENV, KEY)
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(_recipe(world)))
    data = tmp_path / "eval.jsonl"
    save_jsonl_records(mammal_records(), data)
    out = tmp_path / "out"
    argv = ["eval", str(recipe_path), "--models", f"fine-tuned:{world['run']}", "served",
            "--parity", "fine-tuned=served", "--data", str(data), "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr()
    report = json.loads((out / "report.json").read_text())

    (p,) = report["parity"]
    assert (p["model"], p["endpoint"], p["n"]) == ("fine-tuned", "served", 8)
    assert p["identical"] == 8 and p["identical_share"] == 1.0 and p["differing"] == []
    assert p["difference"] == 0.0 and p["difference_ci95"] == [0.0, 0.0]
    assert p["identical_ci95"][0] < 1.0 <= p["identical_ci95"][1]  # 8 answers cannot prove 100%
    ft, served = report["models"]["fine-tuned"], report["models"]["served"]
    assert served["reference"] == f"openai:{world['run_url']}#run"
    assert [a["produced"] for a in served["answers"]] == [a["produced"] for a in ft["answers"]]
    assert served["overall"] == ft["overall"] and served["overall"]["accuracy"] > 0.5
    assert report["bad_cases"]["served"] == report["bad_cases"]["fine-tuned"]
    # retention benchmarks need echoed logprobs: scored as in-process, or n/a with the reason, never 0
    if "toy" in served["benchmarks"]:
        assert served["benchmarks"]["toy"]["correct"] == ft["benchmarks"]["toy"]["correct"]
    else:
        assert "echo" in served["not_measured"]["toy"]
    assert "served" not in report["retention"]  # an endpoint is shown, never gated: the gate guards tuning
    assert "chat template" in served["not_measured"]["loss"]
    lat = served["latency"]
    assert lat["kind"] == "streamed" and lat["requests"] == 3 * 2
    assert lat["ttft"]["min_s"] > 0 and lat["ttft"]["q1_s"] <= lat["ttft"]["median_s"] <= lat["ttft"]["q3_s"]
    # the run answers yes/no in one token: no time per token to measure, and the report says so
    assert lat["tokens_median"] == 1 and lat["s_per_token"] is None and lat["tokens_per_s"] is None
    assert "time per token not measured" in lat["warnings"][0]
    assert ft["latency"]["interleaved"] is False and "k_s_per_token" in ft["latency"]

    html = (out / "report.html").read_text()
    assert "Deployment parity" in html and "8/8 identical greedy answers" in html
    assert "Endpoints: streamed answers" in html and "Not measured (n/a), and why" in html
    assert "parity fine-tuned vs served: 8/8 identical" in printed.err and "toy n/a" in printed.out
    for path in out.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path
    assert KEY not in printed.out + printed.err


def test_a_different_model_behind_the_endpoint_shows_the_difference(world, tmp_path):
    """The untrained base served as if it were the run: parity falls and the differing answers are listed."""
    recipe = recipe_from_dict(_recipe(world, latency={"enabled": False}, multiple_choice=[],
                                      retention={"benchmark": None, "general_loss": {"enabled": False}},
                                      parity=[{"model": "fine-tuned", "endpoint": "impostor", "shown": 3}]))  # fmt: skip
    models = {"fine-tuned": str(world["run"]), "impostor": f"openai:{world['base_url']}#base"}
    report = run_evaluation(recipe, mammal_records(), tmp_path / "eval", models=models)
    (p,) = report["parity"]
    assert p["identical"] < p["n"] == 8 and 0 < len(p["differing"]) <= 3
    first = p["differing"][0]
    assert first["in-process"] != first["endpoint"] and first["id"] in {r.meta.id for r in mammal_records()}
    assert p["difference"] == pytest.approx(p["endpoint_value"] - p["model_value"])
    lo, hi = p["difference_ci95"]
    assert lo <= p["difference"] <= hi and p["difference"] < 0  # the trained run answers the task better
    assert (
        "First differing answers: fine-tuned vs impostor" in (tmp_path / "eval" / "report.html").read_text()
    )
    # the endpoint is checked for symptoms and safety like a local model, through its API
    assert set(report["symptoms"]["models"]) == set(report["safety"]["models"]) == {"fine-tuned", "impostor"}
    assert report["symptoms"]["models"]["impostor"]["general"]["n"] == 40
    assert report["safety"]["models"]["impostor"]["harmful_refused"]["n"] == 40


def test_endpoint_with_icl_row_and_no_key_needed(world, tmp_path):
    """An unnamed endpoint without a key (its variable unset) gets the same k-shot row the base model gets."""
    recipe = recipe_from_dict(_recipe(world, multiple_choice=[], icl_k=2,
                                      latency={"token_counts": [2, 4], "prompt_lengths": [8], "repeats": 2,
                                               "warmup": 0, "endpoint_prompts": 2},
                                      retention={"benchmark": None, "general_loss": {"enabled": False}}))  # fmt: skip
    models = {
        "base": str(world["base"]),
        "hosted": f"openai:{world['base_url']}",
        "fine-tuned": str(world["run"]),
    }
    records = mammal_records()
    report = run_evaluation(recipe, records, tmp_path / "eval", models=models, train_records=records)
    assert list(report["models"]) == [
        "base",
        "base+icl",
        "hosted",
        "hosted+icl",
        "fine-tuned",
    ]  # side by side
    assert report["models"]["hosted"]["reference"] == f"openai:{world['base_url']}#base"
    assert report["models"]["hosted+icl"]["icl_k"] == 2
    # same weights, same prompts: the served base answers as the in-process base, with and without shots
    for a, b in (("base", "hosted"), ("base+icl", "hosted+icl")):
        assert [x["produced"] for x in report["models"][a]["answers"]] == [
            x["produced"] for x in report["models"][b]["answers"]
        ]
    lat = report["models"]["hosted"]["latency"]  # random weights: answers run to max_new_tokens
    assert lat["tokens_median"] == 6 and lat["s_per_token"]["median_s"] > 0 and lat["tokens_per_s"] > 0
    assert "latency" not in report["models"]["hosted+icl"]
    assert (
        report["models"]["fine-tuned"]["overall"]["accuracy"]
        > report["models"]["hosted+icl"]["overall"]["accuracy"]
    )


def test_refused_key_and_unknown_labels_are_one_line_without_the_key(world, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY + "-wrong")
    recipe = recipe_from_dict(_recipe(world, latency={"enabled": False}))
    with pytest.raises(SftlabError) as err:
        run_evaluation(
            recipe, mammal_records(), tmp_path / "a", models={"served": f"openai:{world['run_url']}#run"}
        )
    assert f"${KEY_ENV} was refused" in str(err.value) and KEY not in str(err.value)
    assert "\n" not in str(err.value)
    bad = recipe_from_dict(_recipe(world, parity=[{"model": "fine-tuned", "endpoint": "nowhere"}]))
    with pytest.raises(SftlabError, match="names nowhere, not among the models to evaluate"):
        run_evaluation(bad, mammal_records(), tmp_path / "b", models={"fine-tuned": str(world["run"])})
    down = {"gone": "openai:http://127.0.0.1:9/v1#x"}
    with pytest.raises(SftlabError, match="endpoint gone .*cannot connect"):
        run_evaluation(recipe, mammal_records(), tmp_path / "c", models=down)
    with pytest.raises(SftlabError, match="'openai:ftp://host/v1' is not an endpoint reference"):
        run_evaluation(recipe, mammal_records(), tmp_path / "d", models={"x": "openai:ftp://host/v1"})
    assert not any((tmp_path / d).exists() for d in "abcd")  # refused before any work, nothing half-written


def test_cli_bad_parity_and_endpoint_options_are_one_line(world, tmp_path, capsys):
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(_recipe(world)))
    assert main(["eval", str(recipe_path), "--models", "served", "--parity", "served"]) == 1
    assert "--parity served: use MODEL=ENDPOINT" in capsys.readouterr().err
    bad = _recipe(world)
    bad["evaluation"]["endpoints"].append(dict(bad["evaluation"]["endpoints"][0], url="localhost:8000"))
    recipe_path.write_text(yaml.safe_dump(bad))
    assert main(["eval", str(recipe_path)]) == 2
    err = capsys.readouterr().err
    assert "evaluation.endpoints.1.url" in err and "used more than once" not in err
