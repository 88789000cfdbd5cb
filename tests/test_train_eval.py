"""Eval during training (per source, best checkpoint, early stopping, overfitting), mixing, splits, EWC."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from sftlab.data.record import Conversation, Meta, TextRecord, Turn
from sftlab.recipe import load_recipe
from sftlab.train import run_training
from sftlab.train.callbacks import OverfitWatch
from sftlab.train.mixing import plan_mixture
from sftlab.train.split import stratified_split


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: on a shared, oversubscribed CPU a second spinning thread costs more than it gives."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _conv(i: int, source: str, task: str | None = None) -> Conversation:
    return Conversation(
        turns=[Turn("user", f"{source} question {i}?"), Turn("assistant", f"{source} answer {i * 7}")],
        meta=Meta(id=f"{source}-{i}", source=source, task=task),
    )


def _recipe(model_dir, run_dir, *overrides):
    return load_recipe(
        None,
        [f"model.name={model_dir}", f"output_dir={run_dir}", "render.max_length=64", "training.batch_size=2",
         *overrides],
    )  # fmt: skip


def test_early_stopping_keeps_the_best_checkpoint_and_logs_eval_per_source(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    # A threshold no step can beat: the second evaluation counts as "no improvement" and stops the run.
    recipe = _recipe(
        tiny_model_dir, run, "training.max_steps=20", "training.eval_steps=2", "training.lr=1e-2",
        "training.early_stopping_patience=1", "training.early_stopping_threshold=100",
    )  # fmt: skip
    train = [_conv(i, "alpha") for i in range(6)] + [_conv(i, "beta") for i in range(6)]
    evals = [_conv(i, "alpha", task="x") for i in range(50, 53)] + [
        _conv(i, "beta", task="y") for i in range(50, 52)
    ]
    result = run_training(recipe, train, evals, run)

    assert result.steps == 4  # evaluations at steps 2 and 4, then stop
    summary = json.loads((run / "train" / "summary.json").read_text())
    assert summary["stopped_early"] and "stopped early at step 4" in summary["final_reason"]
    rows = [json.loads(x) for x in (run / "train" / "metrics.jsonl").read_text().splitlines()]
    evals_logged = [r for r in rows if "eval_loss" in r]
    assert [r["step"] for r in evals_logged] == [2, 4]
    assert {"eval_loss/alpha", "eval_loss/beta", "eval_loss/task:x", "eval_loss/task:y"} <= evals_logged[
        0
    ].keys()
    assert evals_logged[0]["eval_loss/alpha"] == evals_logged[0]["eval_loss/task:x"]  # same records here
    # the overall eval loss is the token mean over both sources, so it lies between them
    e = evals_logged[0]
    assert (
        min(e["eval_loss/alpha"], e["eval_loss/beta"])
        <= e["eval_loss"]
        <= max(e["eval_loss/alpha"], e["eval_loss/beta"])
    )
    best = min(evals_logged, key=lambda r: r["eval_loss"])
    assert result.best_checkpoint.endswith(f"checkpoint-{best['step']}")
    assert result.eval_loss == pytest.approx(best["eval_loss"])
    assert f"checkpoint-{best['step']}" in summary["final_reason"]
    final = load_file(run / "final" / "adapter_model.safetensors")
    kept = load_file(run / "checkpoints" / f"checkpoint-{best['step']}" / "adapter_model.safetensors")
    assert all(torch.equal(final[k], kept[k]) for k in final)


def test_overfit_watch_warns_once_when_eval_rises_while_train_falls():
    from transformers import TrainerControl, TrainerState, TrainingArguments

    watch = OverfitWatch()
    args, state, control = (
        TrainingArguments(output_dir="/tmp/unused", report_to="none"),
        TrainerState(),
        TrainerControl(),
    )
    for step, (train_loss, eval_loss) in enumerate(
        [(3.0, 2.0), (2.0, 1.8), (1.5, 1.9), (1.0, 2.2), (0.5, 2.5)], 1
    ):
        state.global_step = step
        watch.on_log(args, state, control, logs={"loss": train_loss})
        watch.on_evaluate(args, state, control, metrics={"eval_loss": eval_loss})
    assert watch.warned_at == 4  # two rises in a row (steps 3 and 4) while train fell


def test_sampling_plan_applies_source_weights_and_task_upsampling():
    samples = (
        [{"source": "domain", "task": "qa", "n_tokens": 10}] * 90
        + [{"source": "domain", "task": "rare", "n_tokens": 10}] * 10
        + [{"source": "general", "n_tokens": 20}] * 40
    )
    plan = plan_mixture(samples, {"general": 0.25}, {"rare": 3.0}, seed=0)
    rows = {r.source: r for r in plan.rows}
    assert rows["general"].examples == 10 and rows["general"].tokens == 200
    assert rows["domain"].examples == 90 + 30
    assert len(plan.indices) == 130 and plan.indices.count(95) == 3  # a rare-task sample, three times
    assert rows["general"].share == pytest.approx(10 / 130)
    assert "general" in plan.table() and "7.7%" in plan.table()
    assert (
        plan_mixture(samples, {"general": 0.25}, seed=0).indices
        == plan_mixture(samples, {"general": 0.25}, seed=0).indices
    )


def test_stratified_split_holds_out_every_task():
    recs = [_conv(i, "s", task="big") for i in range(40)] + [_conv(i, "s", task="small") for i in range(3)]
    train, held = stratified_split(recs, 0.1, seed=3)
    assert len(train) + len(held) == 43 and not {id(r) for r in train} & {id(r) for r in held}
    assert sorted(r.meta.task for r in held) == ["big"] * 4 + ["small"]


def test_pretraining_on_plain_text_trains_every_token(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    texts = [
        TextRecord(f"Plain text number {i} about nothing in particular.", Meta(source="web"))
        for i in range(6)
    ]
    result = run_training(_recipe(tiny_model_dir, run, "training.max_steps=2"), texts, [], run)
    summary = result.summary
    assert summary["stage"] == "pretrain"
    assert summary["render"]["trained_token_share"] > 0.9
    # asked for explicitly, pre-training trains the prompt tokens of conversations as well
    run2 = tmp_path / "run2"
    convs = [_conv(i, "chat") for i in range(6)]
    sft = run_training(_recipe(tiny_model_dir, run2, "training.max_steps=1"), convs, [], run2).summary
    pre = run_training(
        _recipe(tiny_model_dir, run2, "training.max_steps=1", "training.stage=pretrain"), convs, [], run2
    )
    assert sft["stage"] == "sft" and pre.summary["stage"] == "pretrain"
    assert pre.summary["render"]["trained_token_share"] > 0.9 > sft["render"]["trained_token_share"]


def _weighted_drift(model_dir, tokenizer, general, final_weights) -> tuple[float, float]:
    """Fisher-weighted and plain squared distance of the trained weights from the base."""
    from sftlab.models import load_model
    from sftlab.recipe.sections.render import RenderSection
    from sftlab.render import PaddingCollator
    from sftlab.train.data import tokenize
    from sftlab.train.ewc import estimate_fisher

    base = load_model(str(model_dir), device="cpu")
    samples, _ = tokenize(general, tokenizer, RenderSection(max_length=64))
    collate = PaddingCollator(tokenizer.pad_token_id)
    batches = [collate(samples[i : i + 2]) for i in range(0, len(samples), 2)]
    params, fisher = estimate_fisher(base, batches)
    names = {id(p): n for n, p in base.named_parameters()}
    weighted = plain = 0.0
    for p, f in zip(params, fisher, strict=True):
        name = names[id(p)]
        key = name if name in final_weights else name.replace("lm_head", "model.embed_tokens")
        diff = final_weights[key].float() - p.detach().float()
        weighted += float((f * diff**2).sum())
        plain += float((diff**2).sum())
    return weighted, plain


def test_ewc_penalty_reduces_drift_from_the_start(tiny_model_dir, tokenizer, tmp_path):
    domain = [_conv(i, "domain") for i in range(8)]
    general = [_conv(i, "general") for i in range(100, 108)]
    drift = {}
    for lam in (0, 1000):
        run = tmp_path / f"lam{lam}"
        recipe = _recipe(
            tiny_model_dir, run, "training.method=full", "training.lr=3e-3", "training.max_steps=8",
            f"training.ewc.lam={lam}", "training.ewc.fisher_batches=4",
        )  # fmt: skip
        run_training(recipe, domain, [], run, general_records=general)
        drift[lam] = _weighted_drift(
            tiny_model_dir, tokenizer, general, load_file(run / "final" / "model.safetensors")
        )
    assert drift[1000][0] < 0.5 * drift[0][0]  # the Fisher-weighted drift the penalty targets
    assert drift[1000][1] < drift[0][1]


def test_ewc_without_general_data_is_a_clear_error(tiny_model_dir, tmp_path):
    from sftlab.errors import SftlabError

    recipe = _recipe(tiny_model_dir, tmp_path / "r", "training.ewc.lam=10", "training.max_steps=1")
    with pytest.raises(SftlabError, match="general data"):
        run_training(recipe, [_conv(0, "d"), _conv(1, "d")], [], tmp_path / "r")
