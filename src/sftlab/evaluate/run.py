"""``run_evaluation``: several models on the same sets in one run, top-down.

set up (samples, labels, benchmarks, ICL prompter)
→ for each model: generate + task metrics, per-sample loss, benchmarks, latency
  (and the base model again with k in-context examples)
→ retention gate against the base → checkpoint sweep → report.json, report.html, bad_cases.jsonl
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sftlab.data.record import Record
from sftlab.errors import ModelError
from sftlab.evaluate.badcases import bad_cases, write_bad_cases
from sftlab.evaluate.benchmarks import Benchmark, recipe_benchmarks
from sftlab.evaluate.generation import generate_batch
from sftlab.evaluate.icl import IclPrompter
from sftlab.evaluate.latency import measure_latency
from sftlab.evaluate.loss import per_sample_loss, worst
from sftlab.evaluate.metrics import compute_metrics, confusion_matrix, load_custom_metric, load_schema
from sftlab.evaluate.retention import RetentionError, retention_gate
from sftlab.evaluate.samples import EvalSample, to_samples
from sftlab.evaluate.sweep import list_checkpoints, run_sweep
from sftlab.recipe import Recipe
from sftlab.utils.atomic import write_json
from sftlab.utils.progress import console

BASE = "base"
ICL_SUFFIX = "+icl"


def default_models(recipe: Recipe) -> dict[str, str]:
    """The base model, plus the run's trained model when ``<output_dir>/final`` exists."""
    models = {BASE: recipe.model.name}
    run_dir = Path(recipe.output_dir)
    if (run_dir / "final").is_dir():
        models["fine-tuned"] = str(run_dir)
    return models


def run_evaluation(
    recipe: Recipe,
    eval_records: list[Record],
    out_dir: Path,
    *,
    models: dict[str, str] | None = None,
    train_records: list[Record] | None = None,
) -> dict:
    """Evaluate ``models`` (label → reference) on ``eval_records``; write and return the report.

    Writes ``out_dir/report.json``, ``report.html`` and ``bad_cases.jsonl``. With
    ``evaluation.retention.action: fail`` a tripped gate raises
    :class:`RetentionError` after everything is written.
    """
    cfg = recipe.evaluation
    out_dir = Path(out_dir)
    models = models or default_models(recipe)
    base_label = BASE if BASE in models else next(iter(models))
    records = list(eval_records)[: cfg.max_samples] if cfg.max_samples else list(eval_records)
    samples = to_samples(records)
    labels = cfg.label_set or _labels_of(samples)
    schema = load_schema(cfg.json_schema)
    custom = load_custom_metric(cfg.custom_metric) if cfg.custom_metric else None
    benchmarks = recipe_benchmarks(recipe)
    icl = IclPrompter(train_records or [], cfg.icl_k, recipe.seed) if cfg.icl_k and train_records else None
    if cfg.icl_k and icl is None:
        console.print(
            "[yellow]warning:[/] evaluation.icl_k is set but no training records were given; no base+icl row"
        )

    results: dict[str, dict[str, Any]] = {}
    bad: list[dict] = []
    base_mc: dict[str, Any] = {}
    for label, ref in models.items():
        console.print(f"evaluating [bold]{label}[/] ({ref})", highlight=False)
        model, tokenizer = load_for_eval(recipe, ref)
        result, produced = evaluate_model(
            model,
            tokenizer,
            recipe,
            samples,
            records,
            benchmarks,
            labels=labels,
            schema=schema,
            custom=custom,
        )
        results[label] = {"reference": ref, **result}
        bad += bad_cases(label, samples, produced)
        if label == base_label:
            base_mc = result.get("_mc", {})
            if icl is not None:
                icl_result, icl_produced = evaluate_icl(
                    model, tokenizer, recipe, samples, icl, labels=labels, schema=schema, custom=custom
                )
                results[label + ICL_SUFFIX] = {
                    "reference": f"{ref} + {cfg.icl_k} examples in the prompt",
                    **icl_result,
                }
                bad += bad_cases(label + ICL_SUFFIX, samples, icl_produced)
        del model
        gc.collect()

    retention = _retention(results, base_label, cfg)
    sweep = _sweep(recipe, samples, benchmarks, base_mc, labels=labels, schema=schema) if cfg.sweep else None
    for result in results.values():
        result.pop("_mc", None)
    report = {
        "name": recipe.name,
        "base": base_label,
        "primary_metric": _primary(cfg.metrics, custom),
        "eval_records": len(records),
        "eval_samples": len(samples),
        "labels": labels,
        "models": results,
        "retention": retention,
        "sweep": sweep,
        "bad_cases": {label: sum(1 for b in bad if b["model"] == label) for label in results},
        "settings": cfg.model_dump(mode="json"),
    }
    write_bad_cases(out_dir / "bad_cases.jsonl", bad)
    write_json(out_dir / "report.json", report)
    from sftlab.evaluate.report import write_html

    write_html(report, out_dir / "report.html", bad_cases=bad)
    console.print(f"eval report: {out_dir / 'report.html'}", highlight=False)
    failed = [v["message"] for v in retention.values() if v["status"] == "fail"]
    if failed:
        raise RetentionError("; ".join(failed) + f" (report: {out_dir / 'report.html'})")
    return report


def load_for_eval(recipe: Recipe, ref: str):
    """Model and tokenizer of ``ref``; a checkpoint without its own tokenizer uses the base model's."""
    from sftlab.models import load_model, load_tokenizer

    m = recipe.model
    try:
        tokenizer = load_tokenizer(ref, trust_remote_code=m.trust_remote_code)
    except ModelError:
        tokenizer = load_tokenizer(m.name, revision=m.revision, trust_remote_code=m.trust_remote_code)
    model = load_model(
        ref,
        dtype=m.dtype,
        trust_remote_code=m.trust_remote_code,
        attn_implementation=m.attn_implementation,
        merge_adapter=True,
    )
    model.eval()
    return model, tokenizer


def evaluate_model(
    model,
    tokenizer,
    recipe: Recipe,
    samples: Sequence[EvalSample],
    records: Sequence[Record],
    benchmarks: Sequence[Benchmark],
    *,
    labels: Sequence[str],
    schema: dict | None,
    custom: Any,
) -> tuple[dict[str, Any], list[str]]:
    """Task metrics, loss, benchmarks and latency of one model; also its answers (for bad cases)."""
    cfg = recipe.evaluation
    gens = generate_batch(
        model,
        tokenizer,
        [s.messages for s in samples],
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
        tools=[s.tools for s in samples],
    )
    produced = [g.text for g in gens]
    result = task_scores(cfg.metrics, samples, produced, labels=labels, schema=schema, custom=custom)
    result["answers"] = [
        {"id": s.id, "expected": s.expected, "produced": p, "new_tokens": g.new_tokens}
        for s, p, g in zip(samples, produced, gens, strict=True)
    ]
    losses, skipped = per_sample_loss(model, tokenizer, records, recipe.render, batch_size=cfg.batch_size)
    result["loss"] = {
        "mean": sum(x.loss for x in losses) / len(losses) if losses else None,
        "records": len(losses),
        "skipped": skipped,
        "worst": [x.to_dict() for x in worst(losses, cfg.worst_records)],
    }
    mc = {b.name: b.run(model, tokenizer, batch_size=cfg.batch_size) for b in benchmarks}
    result["benchmarks"] = {name: r.to_dict() for name, r in mc.items()}
    result["_mc"] = mc
    if cfg.latency.enabled:
        console.print("measuring latency", highlight=False)
        messages = samples[0].messages if samples else [{"role": "user", "content": "Say hello."}]
        lat = measure_latency(
            model,
            tokenizer,
            messages,
            token_counts=cfg.latency.token_counts,
            prompt_lengths=cfg.latency.prompt_lengths,
            repeats=cfg.latency.repeats,
        )
        result["latency"] = lat.to_dict()
    return result, produced


def evaluate_icl(
    model, tokenizer, recipe: Recipe, samples: Sequence[EvalSample], icl: IclPrompter, **metric_kw: Any
) -> tuple[dict[str, Any], list[str]]:
    """The base model answering with k solved training examples in its prompt (task metrics only)."""
    cfg = recipe.evaluation
    gens = generate_batch(
        model,
        tokenizer,
        [icl.messages(s) for s in samples],
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
        description="generate (in-context)",
        tools=[s.tools for s in samples],
    )
    produced = [g.text for g in gens]
    result = task_scores(cfg.metrics, samples, produced, **metric_kw)
    result["icl_k"] = cfg.icl_k
    return result, produced


def task_scores(
    names: Sequence[str],
    samples: Sequence[EvalSample],
    produced: Sequence[str],
    *,
    labels: Sequence[str],
    schema: dict | None,
    custom: Any,
) -> dict[str, Any]:
    """Metrics overall and per ``meta.task``, plus the confusion matrix when there is a label set."""
    refs = [s.expected for s in samples]
    out: dict[str, Any] = {
        "n": len(samples),
        "overall": compute_metrics(names, produced, refs, labels=labels, schema=schema, custom=custom),
    }
    tasks = sorted({s.task for s in samples if s.task})
    if len(tasks) > 1:
        out["per_task"] = {}
        for task in tasks:
            idx = [i for i, s in enumerate(samples) if s.task == task]
            out["per_task"][task] = compute_metrics(
                names,
                [produced[i] for i in idx],
                [refs[i] for i in idx],
                labels=labels,
                schema=schema,
                custom=custom,
            )
    if labels:
        columns, matrix = confusion_matrix(produced, refs, labels)
        out["confusion"] = {"rows": list(labels), "columns": columns, "matrix": matrix}
    return out


def _labels_of(samples: Sequence[EvalSample]) -> list[str]:
    """``meta.label`` values of the eval set; else its answers when they are few and short (a classifier)."""
    found = sorted({s.label for s in samples if s.label})
    if found:
        return found
    answers = sorted({s.expected.strip() for s in samples})
    if 1 < len(answers) <= 20 and len(answers) * 2 <= len(samples) and all(len(a) <= 40 for a in answers):
        return answers
    return []


def _primary(metrics: Sequence[str], custom: Any) -> str:
    return metrics[0] if metrics else ("custom" if custom else "exact_match")


def _retention(results: dict[str, dict[str, Any]], base_label: str, cfg) -> dict[str, dict]:
    """Gate every non-base model on the first benchmark (MMLU when enabled)."""
    base = results[base_label].get("benchmarks") or {}
    if not base:
        return {}
    name = next(iter(base))
    out = {}
    for label, result in results.items():
        if label == base_label or name not in (result.get("benchmarks") or {}):
            continue
        verdict = retention_gate(
            base[name]["accuracy"],
            result["benchmarks"][name]["accuracy"],
            threshold=cfg.retention.threshold,
            action=cfg.retention.action,
        )
        out[label] = {"benchmark": name, **verdict.to_dict()}
        colour = "green" if verdict.passed else ("red" if verdict.status == "fail" else "yellow")
        console.print(f"[{colour}]{label}: {verdict.message}[/]", highlight=False)
    return out


def _sweep(
    recipe: Recipe,
    samples: Sequence[EvalSample],
    benchmarks: Sequence[Benchmark],
    base_mc: dict[str, Any],
    *,
    labels: Sequence[str],
    schema: dict | None,
) -> dict | None:
    """Every checkpoint on the first ``sweep_samples`` eval samples and benchmark questions."""
    cfg = recipe.evaluation
    run_dir = Path(recipe.output_dir)
    if not list_checkpoints(run_dir):
        return None
    subset = list(samples[: cfg.sweep_samples])
    bench = benchmarks[0] if benchmarks else None
    primary = cfg.metrics[0] if cfg.metrics else "exact_match"
    base_benchmark = None
    if bench is not None and bench.name in base_mc:
        preds = base_mc[bench.name].predictions[: cfg.sweep_samples]
        qs = bench.questions[: cfg.sweep_samples]
        base_benchmark = sum(p == q.answer for p, q in zip(preds, qs, strict=False)) / max(len(qs), 1)

    def score(path: str) -> dict[str, float]:
        model, tokenizer = load_for_eval(recipe, path)
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
            [primary], [g.text for g in gens], [s.expected for s in subset], labels=labels, schema=schema
        )
        row = {"task": metrics.get(primary, 0.0)}
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
    return result
