"""What a training run reports: the summary written to ``train/summary.json`` and the render line.

A resumed run must report what the uninterrupted run would have (wall time
aside): the mean loss comes from the whole log history, which the Trainer
restores from the checkpoint, and the token rate from this session's tokens
over this session's time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sftlab.train.defaults import learning_rate
from sftlab.train.mixing import MixPlan


def render_line(stats: dict[str, Any]) -> str:
    """``render: 120 records = 118 trained + 2 dropped (too long 2)``: no record leaves training unsaid."""
    dropped = {k: stats.get(k, 0) for k in ("dropped_too_long", "no_trained_tokens")}
    n_dropped = sum(dropped.values())
    line = f"render: {stats['records']:,} records = {stats['records'] - n_dropped:,} trained + {n_dropped:,} dropped"
    if n_dropped:
        line += " (" + ", ".join(f"{k.removeprefix('dropped_')} {v:,}" for k, v in dropped.items() if v) + ")"
    if stats.get("samples", 0) != stats["records"] - n_dropped:
        line += f"; {stats['samples']:,} samples"
    return line + f", {stats.get('truncated', 0):,} truncated"


def build_summary(
    recipe,
    trainer,
    output,
    plan: MixPlan,
    early,
    overfit,
    precision,
    stage,
    runtime,
    params,
    render_stats,
    has_eval,
    resumed_from,
    setup: dict[str, Any] | None = None,
) -> dict[str, Any]:
    state = trainer.state
    history = state.log_history
    train_losses = [h["loss"] for h in history if "loss" in h]
    best = state.best_model_checkpoint
    best_metric = state.best_metric
    if has_eval and best:
        reason = (
            f"best checkpoint {Path(best).name} by eval loss {best_metric:.4f} "
            f"(lowest of {sum('eval_loss' in h for h in history)} evaluations)"
        )
    elif has_eval:
        reason = "last step (no evaluation ran before training ended)"
    else:
        reason = "last step (no eval data, so no best checkpoint to choose)"
    if early is not None and early.stopped_at is not None:
        reason += f"; stopped early at step {early.stopped_at} after {early.patience} evaluations without improvement"
    tokens = state.num_input_tokens_seen
    # after a resume the Trainer's own mean and our runtime cover only this session: take the mean from
    # the whole log history and the rate from the tokens this session saw
    session_tokens = tokens - _resumed_tokens(resumed_from)
    return {
        "method": recipe.training.method,
        "stage": stage,
        "base_model": recipe.model.name,
        "precision": precision,
        # attention, packed rows, kernels, optimizer, gradient checkpointing (sftlab.train.setup)
        **(setup or {}),
        "trainable_parameters": params[0],
        "total_parameters": params[1],
        "learning_rate": learning_rate(recipe.training.method, recipe.training.lr),
        "steps": state.global_step,
        "max_steps": state.max_steps,
        "epochs": state.epoch,
        "train_loss": train_losses[-1] if train_losses else None,
        # one logged step is noisy (one packed row): the mean of the last tenth of the logs is the trend
        "train_loss_tail": _tail_mean(train_losses),
        "train_loss_mean": _history_mean_loss(history) if train_losses else output.training_loss,
        "eval_loss": best_metric if has_eval else None,
        "best_checkpoint": best,
        "final_reason": reason,
        "stopped_early": bool(early and early.stopped_at is not None),
        "overfitting_warning_step": overfit.warned_at,
        "tokens_seen": tokens,
        "tokens_per_second": session_tokens / runtime if runtime > 0 else None,
        "runtime_s": runtime,
        "resumed_from": resumed_from,
        "sampling_plan": plan.to_dict(),
        "render": {k: v for k, v in render_stats.items() if k != "dropped_ids"},
    }


def _resumed_tokens(resumed_from: str | None) -> int:
    """Tokens already seen at the checkpoint a run resumed from (0 for a fresh run)."""
    if not resumed_from:
        return 0
    state_file = Path(resumed_from) / "trainer_state.json"
    try:
        return int(json.loads(state_file.read_text(encoding="utf-8")).get("num_input_tokens_seen", 0))
    except (OSError, ValueError):
        return 0


def _history_mean_loss(history: list[dict[str, Any]]) -> float:
    """Mean training loss over every step: each logged loss is the mean since the previous log.

    >>> _history_mean_loss([{"loss": 4.0, "step": 2}, {"loss": 1.0, "step": 3}])
    3.0
    """
    total, steps, prev = 0.0, 0, 0
    for h in history:
        if "loss" in h and "step" in h:
            span = max(int(h["step"]) - prev, 1)
            total += float(h["loss"]) * span
            steps += span
            prev = int(h["step"])
    return total / steps


def _tail_mean(values: list[float], share: float = 0.1) -> float | None:
    """Mean of the last ``share`` of ``values`` (at least one).

    >>> _tail_mean([4.0, 3.0, 2.0, 1.0], 0.5)
    1.5
    """
    if not values:
        return None
    tail = values[-max(1, round(len(values) * share)) :]
    return sum(tail) / len(tail)
