"""Trainer callbacks: metrics log, rich progress bar, early stopping, overfitting warning.

Each keeps what it needs to survive ``--resume`` in the Trainer's checkpoint state
(``ExportableState``), so a resumed run decides exactly as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from sftlab.utils.atomic import write_jsonl
from sftlab.utils.progress import console, make_progress


class MetricsJsonl(TrainerCallback):
    """Append every log (train and eval) as one JSON line to ``train/metrics.jsonl``.

    On resume, lines after the checkpoint's step are dropped first, so the file
    reads like that of a run that was never interrupted.
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        rows = read_metrics(self.path) if self.path.exists() else []
        write_jsonl(self.path, [r for r in rows if r.get("step", 0) <= state.global_step])

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        row = {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4)}
        row.update({k: v for k, v in logs.items() if k not in ("epoch",) and _jsonable(v)})
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")


def read_metrics(path: Path) -> list[dict]:
    """Rows of a metrics file; a half-written last line (the process was killed) is skipped."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _jsonable(v) -> bool:
    return isinstance(v, (int, float, str)) and not (isinstance(v, float) and math.isnan(v))


class RichProgress(TrainerCallback):
    """One progress bar for the run: steps, ETA, latest loss and tokens/s (the Trainer's tqdm is off)."""

    def __init__(self):
        self.progress = None
        self.task = None
        self.latest: dict[str, str] = {}  # the newest loss, tokens/s and eval loss, shown side by side

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.progress = make_progress()
            self.progress.start()
            self.task = self.progress.add_task(
                "train", total=state.max_steps, completed=state.global_step, info=""
            )

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.progress is None or not logs:
            return
        for key, fmt in (
            ("loss", "loss {:.4f}"),
            ("train_tokens_per_second", "{:,.0f} tok/s"),
            ("eval_loss", "eval {:.4f}"),
        ):
            if key in logs:
                self.latest[key] = fmt.format(logs[key])
        self.progress.update(self.task, info=" · ".join(self.latest.values()))

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


class EarlyStopping(TrainerCallback, ExportableState):
    """Stop after ``patience`` evaluations without an eval-loss improvement of at least ``threshold``."""

    def __init__(self, patience: int, threshold: float = 0.0, best: float | None = None, bad_evals: int = 0):
        self.patience = patience
        self.threshold = threshold
        self.best = best
        self.bad_evals = bad_evals
        self.stopped_at: int | None = None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        loss = (metrics or {}).get("eval_loss")
        if loss is None:
            return
        if self.best is None or loss < self.best - self.threshold:
            self.best, self.bad_evals = loss, 0
            return
        self.bad_evals += 1
        if self.bad_evals >= self.patience:
            control.should_training_stop = True
            self.stopped_at = state.global_step

    def state(self) -> dict:
        return {
            "args": {"patience": self.patience, "threshold": self.threshold},
            "attributes": {"best": self.best, "bad_evals": self.bad_evals},
        }


class OverfitWatch(TrainerCallback, ExportableState):
    """Warn once when eval loss rises at two evaluations in a row while train loss keeps falling."""

    def __init__(self, history: list | None = None, warned_at: int | None = None):
        self.history = history or []  # [step, train loss since last eval, eval loss]
        self.warned_at = warned_at
        self._train: list[float] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self._train.append(float(logs["loss"]))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        loss = (metrics or {}).get("eval_loss")
        if loss is None or not self._train:
            return
        self.history.append([state.global_step, sum(self._train) / len(self._train), loss])
        self._train = []
        if self.warned_at is None and overfitting(self.history):
            self.warned_at = state.global_step
            if state.is_world_process_zero:
                console.print(
                    f"[yellow]warning:[/] eval loss rose at the last 2 evaluations (step {state.global_step}) "
                    "while train loss fell: the model is overfitting; the best checkpoint is kept — consider "
                    "fewer epochs, a lower learning rate or early_stopping_patience"
                )

    def state(self) -> dict:
        return {"args": {"history": self.history, "warned_at": self.warned_at}, "attributes": {}}


def overfitting(history: list, window: int = 2) -> bool:
    """Eval loss rose ``window`` times in a row while train loss fell each time.

    >>> overfitting([[1, 2.0, 2.0], [2, 1.5, 2.1], [3, 1.0, 2.3]])
    True
    >>> overfitting([[1, 2.0, 2.0], [2, 1.5, 1.9], [3, 1.0, 2.3]])
    False
    """
    if len(history) <= window:
        return False
    recent = history[-window - 1 :]
    return all(b[2] > a[2] and b[1] < a[1] for a, b in zip(recent, recent[1:], strict=False))
