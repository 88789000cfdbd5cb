"""Experiment tracking: TensorBoard event files by default, ``training.report_to`` passed to the Trainer."""

from __future__ import annotations

import json

import pytest
import torch

from sftlab.data.record import Conversation, Meta, Turn
from sftlab.errors import RecipeError
from sftlab.recipe import load_recipe
from sftlab.train import run_training


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _conv(i: int) -> Conversation:
    return Conversation(
        turns=[Turn("user", f"question {i}?"), Turn("assistant", f"answer {i * 3}")], meta=Meta(id=f"r{i}")
    )


def _recipe(model_dir, run_dir, *overrides):
    return load_recipe(
        None,
        [f"model.name={model_dir}", f"output_dir={run_dir}", "render.max_length=48", "training.batch_size=2",
         "training.max_steps=4", "training.eval_steps=2", *overrides],
    )  # fmt: skip


def _scalars(folder) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values: dict[str, list[float]] = {}
    for events in sorted(folder.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events.parent))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            values.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    return values


def test_tensorboard_event_files_hold_train_and_eval_losses(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    result = run_training(
        _recipe(tiny_model_dir, run), [_conv(i) for i in range(8)], [_conv(50), _conv(51)], run
    )
    scalars = _scalars(run / "train" / "tensorboard")
    metrics = [json.loads(line) for line in (run / "train" / "metrics.jsonl").read_text().splitlines()]
    train_losses = [m["loss"] for m in metrics if "loss" in m]
    eval_losses = [m["eval_loss"] for m in metrics if "eval_loss" in m]
    assert scalars["train/loss"] == pytest.approx(train_losses, rel=1e-5) and len(train_losses) == 4
    assert scalars["eval/loss"] == pytest.approx(eval_losses, rel=1e-5) and len(eval_losses) == 2
    assert "train/learning_rate" in scalars
    # the final/ folder is published like an export: our card, the base by name, readable files
    card = (result.final_dir / "README.md").read_text()
    assert "sftlab" in card and "lora" in card
    adapter = json.loads((result.final_dir / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny_model_dir)
    assert all(p.stat().st_mode & 0o077 == 0o044 for p in result.final_dir.iterdir() if p.is_file())


def test_report_to_empty_writes_no_event_files(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    run_training(_recipe(tiny_model_dir, run, "training.report_to=[]"), [_conv(i) for i in range(4)], [], run)
    assert not (run / "train" / "tensorboard").exists()


def test_report_to_names_are_checked_at_recipe_load(tiny_model_dir, tmp_path):
    with pytest.raises(RecipeError, match="training.report_to.*'tensorboard', 'wandb'"):
        _recipe(tiny_model_dir, tmp_path, "training.report_to=[tensorbord]")
    import importlib.util

    if importlib.util.find_spec("wandb") is None:
        with pytest.raises(RecipeError, match="wandb not installed; pip install wandb"):
            _recipe(tiny_model_dir, tmp_path, "training.report_to=[tensorboard, wandb]")
