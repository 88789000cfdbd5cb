"""What both training workers share: the token/time meter and the result line.

Imported by ``train_worker_sftlab.py`` (sftlab's environment) and
``train_worker_trl.py`` (TRL's own environment), so it depends on transformers only.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from transformers import TrainerCallback


class Meter(TrainerCallback):
    """Counts the real (non-padding) tokens of every batch and times every optimizer step.

    Tokens are counted from the collator's input features — samples, or rows that were
    packed ahead of time — so padding added by the collator is never counted. The first
    ``warmup`` steps (lazy initialisation, allocator growth) are left out of the rate.
    """

    def __init__(self, warmup: int = 1):
        self.warmup = warmup
        self.batch_tokens: list[int] = []
        self.step_end: list[float] = []
        self.losses: dict[int, float] = {}

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        # accelerate wraps the torch DataLoader (DataLoaderAdapter.base_dataloader); the wrapped one collates
        train_dataloader = getattr(train_dataloader, "base_dataloader", train_dataloader)
        inner = train_dataloader.collate_fn

        def counting(features):
            self.batch_tokens.append(sum(_real_tokens(f) for f in features))
            return inner(features)

        train_dataloader.collate_fn = counting

    def on_step_end(self, args, state, control, **kwargs):
        self.step_end.append(time.perf_counter())

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses[state.global_step] = float(logs["loss"])

    def result(self, tail: int = 3) -> dict:
        steps = len(self.step_end)
        if not self.batch_tokens:
            raise RuntimeError("no batch was counted: the collator hook did not take")
        timed = self.step_end[-1] - self.step_end[self.warmup - 1]
        tokens = sum(self.batch_tokens[self.warmup : steps])
        losses = [self.losses[k] for k in sorted(self.losses)]
        return {
            "steps": steps,
            "tokens_per_s": tokens / timed,
            "timed_tokens": tokens,
            "timed_s": timed,
            "final_loss": sum(losses[-tail:]) / len(losses[-tail:]),
            "losses": losses,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }


def _real_tokens(feature: dict) -> int:
    if "pack" in feature:  # sftlab's rows packed ahead of time
        return sum(len(s["input_ids"]) for s in feature["pack"])
    return len(feature["input_ids"])


def emit(result: dict) -> None:
    """The worker's one machine-readable line on stdout."""
    print("RESULT " + json.dumps(result), flush=True)


def worker_arguments(default_out: str) -> argparse.ArgumentParser:
    """The options every worker takes (bench_train.py passes the same ones to both)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--mode", choices=["padded", "packed"], required=True)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=default_out)
    return ap
