"""Checkpoint sweep: score every ``run_dir/checkpoints/checkpoint-N`` and mark the best trade-off.

Best = the highest task score among checkpoints whose benchmark accuracy stays
within the retention threshold of the base model; when none does, the one
with the highest task score minus its excess drop. Train and eval loss from
``run_dir/train/metrics.jsonl`` sit beside it, so over-fitting shows up, and
``train/summary.json`` says which checkpoint ``final/`` is and why (training keeps
the lowest eval loss, which need not be the best trade-off).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sftlab.errors import DataError


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every ``checkpoints/checkpoint-N`` holding a model or an adapter, by step."""
    folder = Path(run_dir) / "checkpoints"
    found = []
    for path in folder.glob("checkpoint-*") if folder.is_dir() else []:
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and ((path / "config.json").is_file() or (path / "adapter_config.json").is_file()):
            found.append((int(match.group(1)), path))
    return sorted(found)


def read_train_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The lines of ``train/metrics.jsonl`` (empty when training wrote none)."""
    path = Path(run_dir) / "train" / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{lineno}: invalid JSON ({err.msg})") from None
    return rows


def pick_best(rows: list[dict[str, Any]], base_benchmark: float | None, threshold: float) -> int | None:
    """Index of the best trade-off row (keys ``task``, optional ``benchmark``).

    >>> pick_best([{"task": .9, "benchmark": .2}, {"task": .8, "benchmark": .3}], 0.3, 0.02)
    1
    """
    if not rows:
        return None

    def excess(row: dict[str, Any]) -> float:
        if base_benchmark is None or row.get("benchmark") is None:
            return 0.0
        return max(0.0, base_benchmark - row["benchmark"] - threshold)

    passing = [i for i, r in enumerate(rows) if excess(r) <= 1e-12]
    if passing:
        return max(passing, key=lambda i: (rows[i]["task"], rows[i].get("benchmark") or 0.0))
    return max(range(len(rows)), key=lambda i: rows[i]["task"] - excess(rows[i]))


def run_sweep(
    run_dir: str | Path,
    score: Callable[[str], dict[str, float]],
    *,
    base_benchmark: float | None,
    threshold: float,
) -> dict[str, Any] | None:
    """``score(checkpoint_path) -> {"task": .., "benchmark": ..}`` for each checkpoint; ``None`` without checkpoints."""
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        return None
    metrics = read_train_metrics(run_dir)
    eval_loss = {r["step"]: r["eval_loss"] for r in metrics if "eval_loss" in r and "step" in r}
    rows = []
    from sftlab.utils.progress import console

    for i, (step, path) in enumerate(checkpoints, 1):
        console.print(f"checkpoint sweep {i}/{len(checkpoints)}: {path.name}", markup=False, highlight=False)
        row = {"step": step, "checkpoint": str(path), **score(str(path))}
        if step in eval_loss:
            row["eval_loss"] = eval_loss[step]
        rows.append(row)
    best = pick_best(rows, base_benchmark, threshold)
    for i, row in enumerate(rows):
        row["best"] = i == best
    return {
        "rows": rows,
        "best_step": rows[best]["step"] if best is not None else None,
        "base_benchmark": base_benchmark,
        "train_curve": [
            {k: r[k] for k in ("step", "loss", "eval_loss") if k in r} for r in metrics if "step" in r
        ],
    }


def final_provenance(run_dir: str | Path) -> dict[str, Any]:
    """Which checkpoint ``final/`` is and why, from ``train/summary.json`` (empty when training wrote none)."""
    path = Path(run_dir) / "train" / "summary.json"
    if not path.is_file():
        return {}
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    best = summary.get("best_checkpoint")
    match = re.search(r"checkpoint-(\d+)$", str(best or "").rstrip("/"))
    return {
        "final_step": int(match.group(1)) if match else summary.get("steps"),
        "final_reason": summary.get("final_reason")
        or ("the last step" if not best else f"best checkpoint {best}"),
    }


def run_checkpoint_sweep(
    recipe, samples: Sequence, benchmarks: Sequence, base_mc: dict[str, Any], load: Callable, **metric_kw: Any
) -> dict[str, Any] | None:
    """Every checkpoint on the first ``sweep_samples`` eval samples and retention-benchmark questions.

    ``load(recipe, path) -> (model, tokenizer)``; ``base_mc`` holds the base model's benchmark results.
    """
    import gc

    from sftlab.evaluate.generation import generate_batch
    from sftlab.evaluate.metrics import compute_metrics

    cfg = recipe.evaluation
    run_dir = Path(recipe.output_dir)
    if not list_checkpoints(run_dir):
        return None
    subset = list(samples[: cfg.sweep_samples])
    bench = benchmarks[0] if benchmarks else None
    primary = cfg.metrics[0] if cfg.metrics else "exact_match"
    base_benchmark = None
    if bench is not None and bench.name in base_mc:
        right = base_mc[bench.name].correct[: cfg.sweep_samples]
        base_benchmark = sum(right) / max(len(right), 1)

    def score(path: str) -> dict[str, float]:
        model, tokenizer = load(recipe, path)
        gens = generate_batch(
            model,
            tokenizer,
            [s.messages for s in subset],
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size,
            description=Path(path).name,
            tools=[s.tools for s in subset],
        )
        metrics = compute_metrics(
            [primary],
            [g.text for g in gens],
            [s.expected for s in subset],
            labels=metric_kw.get("labels", ()),
            schema=metric_kw.get("schema"),
        )
        row = {"task": metrics.get(primary) or 0.0}
        if bench is not None:
            row["benchmark"] = bench.run(
                model, tokenizer, batch_size=cfg.batch_size, limit=cfg.sweep_samples
            ).accuracy
        del model
        gc.collect()
        return row

    result = run_sweep(run_dir, score, base_benchmark=base_benchmark, threshold=cfg.retention.threshold)
    if result is not None:
        result["task_metric"] = primary
        result["benchmark"] = bench.name if bench is not None else None
        result.update(final_provenance(run_dir))
    return result
