"""The example recipes in examples/: each one loads, its data reads cleanly, and it runs end to end.

The runs use a tiny random model (the ``tiny_model_dir`` fixture) and 2 training steps, so they
check that every recipe key and data file works through the whole pipeline, not the quality of
the result.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sftlab.cli.main import main
from sftlab.data.io import read_source
from sftlab.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
RECIPES = sorted(EXAMPLES.glob("*.yaml"))
PRETRAIN_PAIR = ("continued_pretraining.yaml", "sft_after_pretraining.yaml")
# quickstart.yaml is `make demo` (its curation selects with a sentence-embedding model); it is
# checked for loading and data here, not run
END_TO_END = [p for p in RECIPES if p.name not in (*PRETRAIN_PAIR, "quickstart.yaml")]

FAST = [
    "training.max_steps=2",
    "evaluation.mmlu.enabled=false",
    "evaluation.max_new_tokens=2",
    "evaluation.max_samples=4",
    "evaluation.batch_size=4",
    "evaluation.sweep=false",
    "evaluation.latency.token_counts=[1, 2]",
    "evaluation.latency.prompt_lengths=[8]",
    "evaluation.latency.repeats=1",
    "evaluation.retention.benchmark=null",
    "evaluation.retention.general_loss.enabled=false",
    # Symptoms on a few general prompts; safety has its own tests (test_eval_symptoms.py) and would add
    # 80 generations per model to every example.
    "evaluation.symptoms.general_prompts=4",
    "evaluation.safety.enabled=false",
]


@pytest.fixture(autouse=True)
def _repo_root_one_thread(monkeypatch):
    """Recipes name their data relative to the repository root; one torch thread (2 shared cores)."""
    monkeypatch.chdir(ROOT)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _sources(recipe):
    sources = [*recipe.data.sources, *recipe.data.eval_sources]
    if recipe.training.ewc.source is not None:
        sources.append(recipe.training.ewc.source)
    return sources


def test_the_examples_are_there():
    names = {p.name for p in RECIPES}
    assert {
        "alpaca_single_task.yaml",
        "sharegpt_multiturn.yaml",
        "tool_calls.yaml",
        *PRETRAIN_PAIR,
        "full_finetune.yaml",
        "prompt_tuning.yaml",
        "ewc_general.yaml",
    } <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_loads_and_every_data_file_reads_without_rejects(path):
    recipe = load_recipe(path)
    assert recipe.model.name
    sources = _sources(recipe)
    assert sources
    for source in sources:
        stream = read_source(source, on_error="skip")
        records = list(stream)
        assert records, source.path
        stats = stream.stats
        assert stats.rejected == 0, (source.path, dict(stats.rejected_by_reason))
        assert stats.kept == stats.records_in == len(records)


def test_the_examples_use_what_they_show():
    r = {p.name: load_recipe(p) for p in RECIPES}
    assert all(rec.model.name == "smollm2-135m-instruct" for n, rec in r.items() if n != PRETRAIN_PAIR[1])
    assert r["alpaca_single_task.yaml"].data.sources[0].format in ("auto", "alpaca")
    assert r["alpaca_single_task.yaml"].data.eval_fraction > 0
    assert r["sharegpt_multiturn.yaml"].render.train_on == "all_assistant"
    assert r["tool_calls.yaml"].render.train_tool_calls
    assert r["continued_pretraining.yaml"].training.stage == "pretrain"
    assert r["continued_pretraining.yaml"].output_dir == "runs/cpt"
    assert r["sft_after_pretraining.yaml"].model.name == "runs/cpt"
    assert r["full_finetune.yaml"].training.method == "full"
    assert r["full_finetune.yaml"].training.lr <= 5e-5
    assert r["prompt_tuning.yaml"].training.method == "prompt_tuning"
    assert r["prompt_tuning.yaml"].training.prompt.init_text
    ewc = r["ewc_general.yaml"]
    assert ewc.training.ewc.lam > 0 and ewc.evaluation.retention.benchmark == "arc_easy"
    assert any(s.general for s in ewc.data.sources)


def test_example_data_has_the_promised_shape():
    sharegpt = [json.loads(line) for line in (EXAMPLES / "data/sharegpt_multiturn.jsonl").open()]
    assert any(c["conversations"][0]["from"] == "system" for c in sharegpt)
    assert {t["from"] for c in sharegpt for t in c["conversations"]} == {"system", "human", "gpt"}
    tools = [json.loads(line) for line in (EXAMPLES / "data/tool_calls.jsonl").open()]
    assert sum(any(m.get("tool_calls") for m in row["messages"]) for row in tools) >= 15
    assert all(m["tool_call_id"] for row in tools for m in row["messages"] if m["role"] == "tool")


def _run(recipe: Path, *overrides: str) -> int:
    return main(["run", str(recipe), *overrides, *FAST])


@pytest.mark.parametrize("path", END_TO_END, ids=lambda p: p.stem)
def test_example_runs_end_to_end(path, tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    assert _run(path, f"model.name={tiny_model_dir}", f"output_dir={out}") == 0
    summary = json.loads((out / "train" / "summary.json").read_text())
    assert summary["steps"] == 2
    assert (out / "final").is_dir()
    assert (out / "report.json").is_file()


def test_continued_pretraining_then_sft_on_the_run_folder(tiny_model_dir, tmp_path):
    """Stage 2 starts from stage 1's LoRA run: folded into the base, a fresh adapter on top, evaluated."""
    cpt, sft = tmp_path / "cpt", tmp_path / "sft"
    stage1, stage2 = (EXAMPLES / name for name in PRETRAIN_PAIR)
    assert _run(stage1, f"model.name={tiny_model_dir}", f"output_dir={cpt}", "--until", "train") == 0
    assert _run(stage2, f"model.name={cpt}", f"output_dir={sft}") == 0
    assert (sft / "report.json").is_file()
    first = json.loads((cpt / "train" / "summary.json").read_text())
    second = json.loads((sft / "train" / "summary.json").read_text())
    # the same LoRA on the same architecture: no adapter stacked on an adapter (which also wrapped lm_head)
    assert second["trainable_parameters"] == first["trainable_parameters"]
