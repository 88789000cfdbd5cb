"""A run killed with SIGKILL after its first checkpoint and resumed ends where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sftlab.data.record import Conversation, Meta, Turn
from sftlab.recipe import load_recipe
from sftlab.train import run_training


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: on a shared, oversubscribed CPU a second spinning thread costs more than it gives."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


COMPARED = ("loss", "grad_norm", "learning_rate", "eval_loss", "num_input_tokens_seen")


def _records(n: int, offset: int = 0) -> list[Conversation]:
    return [
        Conversation(
            turns=[
                Turn("user", f"Spell {i} in words, please."),
                Turn("assistant", f"The number {i} {'!' * (i % 5)}"),
            ],
            meta=Meta(id=str(i), source="spell", task="even" if i % 2 == 0 else "odd"),
        )
        for i in range(offset, offset + n)
    ]


def _overrides(model_dir, run_dir) -> list[str]:
    # LoRA dropout makes the result depend on the restored RNG state too.
    return [
        f"model.name={model_dir}", f"output_dir={run_dir}", "render.max_length=64", "training.batch_size=2",
        "training.grad_accum=2", "training.max_steps=12", "training.eval_steps=4", "training.lr=5e-3",
        "training.lora.dropout=0.1", "training.save_total_limit=10",
    ]  # fmt: skip


SCRIPT = """
import json, sys, time
import torch
torch.set_num_threads(1)
from pathlib import Path
from transformers import TrainerCallback
from sftlab.data.record import record_from_dict
from sftlab.recipe import load_recipe
from sftlab.train import run_training


class Slow(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(0.5)

data = json.loads(Path(sys.argv[1]).read_text())
recipe = load_recipe(None, data["overrides"])
train = [record_from_dict(d) for d in data["train"]]
evals = [record_from_dict(d) for d in data["eval"]]
run_training(recipe, train, evals, Path(recipe.output_dir), callbacks=[Slow()])
"""


def _rows(run: Path) -> list[dict]:
    rows = [json.loads(x) for x in (run / "train" / "metrics.jsonl").read_text().splitlines()]
    return [{k: r[k] for k in ("step", *COMPARED) if k in r} for r in rows if "loss" in r or "eval_loss" in r]


def test_resume_after_sigkill_matches_uninterrupted_run(tiny_model_dir, tmp_path):
    train, evals = _records(10), _records(4, offset=100)
    ref_dir, cut_dir = tmp_path / "ref", tmp_path / "cut"

    reference = run_training(load_recipe(None, _overrides(tiny_model_dir, ref_dir)), train, evals, ref_dir)

    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "overrides": _overrides(tiny_model_dir, cut_dir),
                "train": [r.to_dict() for r in train],
                "eval": [r.to_dict() for r in evals],
            }
        )
    )
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "SFTLAB_PROGRESS": "0", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(spec)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    first = cut_dir / "checkpoints" / "checkpoint-4" / "trainer_state.json"
    deadline = time.time() + 240
    while not first.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert first.is_file(), (
        proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no checkpoint in time"
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert not (cut_dir / "final").exists()  # it really died mid-run
    assert not (cut_dir / "checkpoints" / "checkpoint-12").exists()

    resumed = run_training(
        load_recipe(None, _overrides(tiny_model_dir, cut_dir)), train, evals, cut_dir, resume=True
    )
    assert resumed.summary["resumed_from"] is not None
    assert resumed.steps == reference.steps == 12

    for name in ("final", "checkpoints/checkpoint-12"):
        a = load_file(ref_dir / name / "adapter_model.safetensors")
        b = load_file(cut_dir / name / "adapter_model.safetensors")
        assert a.keys() == b.keys()
        assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
        assert any(v.abs().sum() > 0 for k, v in a.items() if "lora_B" in k)  # it did train

    ref_rows, cut_rows = _rows(ref_dir), _rows(cut_dir)
    assert [r["step"] for r in ref_rows] == [r["step"] for r in cut_rows]
    for r, c in zip(ref_rows, cut_rows, strict=True):
        assert r.keys() == c.keys()
        for k in r:
            assert abs(r[k] - c[k]) <= 1e-6 * max(1.0, abs(r[k])), (r["step"], k, r[k], c[k])
    assert reference.summary["best_checkpoint"].endswith(Path(resumed.summary["best_checkpoint"]).name)
    assert torch.tensor(reference.eval_loss) == torch.tensor(resumed.eval_loss)

    # the summary of the resumed run is the uninterrupted run's, wall time aside
    ref_sum, cut_sum = reference.summary, resumed.summary
    for key in ("steps", "epochs", "tokens_seen", "train_loss", "train_loss_tail", "train_loss_mean"):
        assert ref_sum[key] == pytest.approx(cut_sum[key], rel=1e-6), key
    session = cut_sum["tokens_per_second"] * cut_sum["runtime_s"]
    assert session < cut_sum["tokens_seen"]  # the rate counts only the tokens this session trained on
