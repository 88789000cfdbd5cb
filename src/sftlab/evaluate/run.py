"""``run_evaluation``: several models on the same sets in one run, top-down.

set up (samples, labels, benchmarks, held-out general records, ICL prompter)
→ for each model: generate + task metrics, per-sample loss, benchmarks, general loss
  (and the base model again with k in-context examples)
→ latency of all models in ONE interleaved pass (machine load hits them alike)
→ retention gate against the base (paired test + loss shift) → checkpoint sweep
→ report.json, report.html, bad_cases.jsonl
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sftlab.data.record import Record
from sftlab.errors import ModelError, SftlabError
from sftlab.evaluate.badcases import bad_cases, write_bad_cases
from sftlab.evaluate.benchmarks import Benchmark, recipe_benchmarks
from sftlab.evaluate.endpoint import is_endpoint, ref_of
from sftlab.evaluate.general_loss import general_loss, load_general_records, public
from sftlab.evaluate.generation import generate_batch
from sftlab.evaluate.icl import IclPrompter
from sftlab.evaluate.loss import per_sample_loss, worst
from sftlab.evaluate.metrics import load_custom_metric, load_schema
from sftlab.evaluate.retention import RetentionError, gate_models
from sftlab.evaluate.samples import EvalSample, to_samples
from sftlab.evaluate.sweep import run_checkpoint_sweep
from sftlab.evaluate.symptoms_run import SymptomChecks, local_asker, tripped
from sftlab.evaluate.tasks import labels_of, scored_answers
from sftlab.recipe import Recipe
from sftlab.utils.atomic import write_json
from sftlab.utils.progress import console

BASE = "base"
ICL_SUFFIX = "+icl"


def default_models(recipe: Recipe) -> dict[str, str]:
    """The base model, the run's trained model when ``<output_dir>/final`` exists, and the recipe's endpoints."""
    models = {BASE: recipe.model.name}
    run_dir = Path(recipe.output_dir)
    if (run_dir / "final").is_dir():
        models["fine-tuned"] = str(run_dir)
    models.update({e.label: ref_of(e) for e in recipe.evaluation.endpoints})
    return models


def run_evaluation(
    recipe: Recipe,
    eval_records: list[Record],
    out_dir: Path,
    *,
    models: dict[str, str] | None = None,
    train_records: list[Record] | None = None,
    parity: Sequence[tuple[str, str]] = (),
) -> dict:
    """Evaluate ``models`` (label → reference) on ``eval_records``; write and return the report.

    Writes ``out_dir/report.json``, ``report.html`` and ``bad_cases.jsonl``. With
    ``evaluation.retention.action: fail`` a tripped gate raises
    :class:`RetentionError` after everything is written. ``parity`` adds (model, endpoint) label pairs
    to ``evaluation.parity``.
    """
    cfg = recipe.evaluation
    out_dir = Path(out_dir)
    models = models or default_models(recipe)
    base_label = BASE if BASE in models else next(iter(models))
    records = list(eval_records)[: cfg.max_samples] if cfg.max_samples else list(eval_records)
    samples = to_samples(records)
    labels = cfg.label_set or labels_of(samples)
    metric_kw = {
        "labels": labels,
        "schema": load_schema(cfg.json_schema),
        "custom": load_custom_metric(cfg.custom_metric) if cfg.custom_metric else None,
    }
    benchmarks = recipe_benchmarks(recipe)
    gl = cfg.retention.general_loss
    general = load_general_records(gl.path, gl.records) if gl.enabled else []
    icl = IclPrompter(train_records or [], cfg.icl_k, recipe.seed) if cfg.icl_k and train_records else None
    if cfg.icl_k and icl is None:
        console.print(
            "[yellow]warning:[/] evaluation.icl_k is set but no training records were given; no base+icl row"
        )

    pairs = _parity_pairs(cfg, parity, models)
    served = {e for _, e, _ in pairs}
    if any(is_endpoint(ref) for ref in models.values()):
        from sftlab.evaluate.endpoint_run import check_endpoints

        check_endpoints(recipe, models)  # a wrong URL, key or model fails now, not after the local models
    run = _Run(recipe, samples, records, benchmarks, general, metric_kw)
    run.checks = _symptom_checks(recipe, general)
    for label, ref in models.items():
        with_icl = label == base_label or (is_endpoint(ref) and label not in served)
        run.evaluate(label, ref, icl if with_icl else None)
    results, bad, mc, losses = run.results, run.bad, run.mc, run.losses

    local = {label: ref for label, ref in models.items() if not is_endpoint(ref)}
    if cfg.latency.enabled and local:
        for label, lat in latency_pass(recipe, local, samples).items():
            results[label]["latency"] = lat
    retention = gate_models(results, mc, losses, base_label, recipe.evaluation.retention)
    sweep = None
    if cfg.sweep:
        sweep = run_checkpoint_sweep(
            recipe, samples, benchmarks, mc.get(base_label, {}), load_for_eval, **metric_kw
        )
    symptoms, safety = run.checks.report(base_label) if run.checks else (None, None)
    report = {
        "name": recipe.name,
        "base": base_label,
        "primary_metric": _primary(cfg.metrics, metric_kw["custom"]),
        "eval_records": len(records),
        "eval_samples": len(samples),
        "labels": labels,
        "models": results,
        "retention": retention,
        "sweep": sweep,
        "parity": _parity(pairs, results, samples, recipe, metric_kw),
        "symptoms": symptoms,
        "safety": safety,
        "bad_cases": {label: sum(1 for b in bad if b["model"] == label) for label in results},
        "settings": cfg.model_dump(mode="json"),
    }
    _publish(report, bad, out_dir)
    return report


def _publish(report: dict[str, Any], bad: list[dict], out_dir: Path) -> None:
    """Write bad_cases.jsonl, report.json and report.html; then a failed gate (``action: fail``) raises."""
    from sftlab.evaluate.report import write_html

    write_bad_cases(out_dir / "bad_cases.jsonl", bad)
    write_json(out_dir / "report.json", report)
    write_html(report, out_dir / "report.html", bad_cases=bad)
    console.print(f"eval report: {out_dir / 'report.html'}", highlight=False)
    failed = [v["message"] for v in report["retention"].values() if v["status"] == "fail"]
    failed += tripped(report.get("symptoms"), report.get("safety"))
    if failed:
        raise RetentionError("; ".join(failed) + f" (report: {out_dir / 'report.html'})")


class _Run:
    """What the models' evaluations collect, one model loaded at a time."""

    def __init__(self, recipe, samples, records, benchmarks, general, metric_kw):
        self.recipe, self.samples, self.records, self.benchmarks = recipe, samples, records, benchmarks
        self.general, self.metric_kw = general, metric_kw
        self.results: dict[str, dict[str, Any]] = {}
        self.bad: list[dict] = []
        self.mc: dict[str, dict[str, Any]] = {}
        self.losses: dict[str, dict[str, Any]] = {}
        self.checks: SymptomChecks | None = None

    def evaluate(self, label: str, ref: str, icl: IclPrompter | None) -> None:
        """One model: task metrics, loss, benchmarks, general loss (and the in-context row when ``icl``)."""
        cfg = self.recipe.evaluation
        if is_endpoint(ref):
            from sftlab.evaluate.endpoint_run import evaluate_endpoint

            # its benchmark rows are reported, but an endpoint is not gated: the gate guards fine-tuning
            rows, bad, _ = evaluate_endpoint(
                self.recipe,
                label,
                ref,
                self.samples,
                self.benchmarks,
                icl=icl,
                general=bool(self.general),
                metric_kw=self.metric_kw,
            )
            self.results.update(rows)
            self.bad += bad
            if self.checks is not None:
                from sftlab.evaluate.endpoint_run import endpoint_asker

                prompts = [_last_user(s.messages) for s in self.samples]
                self.checks.collect(
                    label, endpoint_asker(self.recipe, label, ref), prompts, rows[label]["answers"]
                )
            return
        console.print(f"evaluating [bold]{label}[/] ({ref})", highlight=False)
        model, tokenizer = load_for_eval(self.recipe, ref)
        result, produced, self.mc[label] = evaluate_model(
            model, tokenizer, self.recipe, self.samples, self.records, self.benchmarks, **self.metric_kw
        )
        if self.general:
            self.losses[label] = general_loss(
                model, tokenizer, self.general, self.recipe.render, batch_size=cfg.batch_size
            )
            result["general_loss"] = public(self.losses[label])
        self.results[label] = {"reference": ref, **result}
        if self.checks is not None:
            prompts = [_last_user(s.messages) for s in self.samples]
            self.checks.collect(
                label, local_asker(model, tokenizer, cfg.batch_size), prompts, result["answers"]
            )
        self.bad += bad_cases(label, self.samples, produced)
        if icl is not None:
            icl_result, icl_produced = evaluate_icl(
                model, tokenizer, self.recipe, self.samples, icl, **self.metric_kw
            )
            self.results[label + ICL_SUFFIX] = {
                "reference": f"{ref} + {cfg.icl_k} examples in the prompt",
                **icl_result,
            }
            self.bad += bad_cases(label + ICL_SUFFIX, self.samples, icl_produced)
        del model
        gc.collect()


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
    **metric_kw: Any,
) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    """Task metrics, loss and benchmarks of one model; also its answers (bad cases) and MC results (gate)."""
    cfg = recipe.evaluation
    gens = generate_batch(
        model,
        tokenizer,
        [s.messages for s in samples],
        max_new_tokens=cfg.max_new_tokens,
        batch_size=cfg.batch_size,
        tools=[s.tools for s in samples],
    )
    result, produced = scored_answers(cfg.metrics, samples, gens, **metric_kw)
    losses, skipped = per_sample_loss(model, tokenizer, records, recipe.render, batch_size=cfg.batch_size)
    result["loss"] = {
        "mean": sum(x.loss for x in losses) / len(losses) if losses else None,
        "records": len(losses),
        "skipped": skipped,
        "worst": [x.to_dict() for x in worst(losses, cfg.worst_records)],
    }
    mc = {b.name: b.run(model, tokenizer, batch_size=cfg.batch_size) for b in benchmarks}
    result["benchmarks"] = {name: r.to_dict() for name, r in mc.items()}
    return result, produced, mc


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
    result, produced = scored_answers(cfg.metrics, samples, gens, **metric_kw)
    result["icl_k"] = cfg.icl_k
    return result, produced


def latency_pass(recipe: Recipe, models: dict[str, str], samples: Sequence[EvalSample]) -> dict[str, dict]:
    """Every model's latency, measured interleaved when they fit in memory together (else one by one)."""
    from sftlab.evaluate.latency import measure_latency_many
    from sftlab.evaluate.memory import fits_together

    lat = recipe.evaluation.latency
    messages = samples[0].messages if samples else [{"role": "user", "content": "Say hello."}]
    kw = {
        "token_counts": lat.token_counts,
        "prompt_lengths": lat.prompt_lengths,
        "repeats": lat.repeats,
        "warmup": lat.warmup,
        "max_spread": lat.max_spread,
    }
    loaded: dict[str, tuple[Any, Any]] = {}
    for label, ref in models.items():
        loaded[label] = load_for_eval(recipe, ref)
        if len(loaded) == 1 and not fits_together(loaded[label][0], len(models)):
            break
    console.print(f"measuring latency of {', '.join(models)}", highlight=False)
    if len(loaded) == len(models):
        reports = measure_latency_many(loaded, messages, **kw)
        out = {label: {**r.to_dict(), "interleaved": len(models) > 1} for label, r in reports.items()}
        del loaded
    else:  # too big to hold together: one after the other, and the report says so
        del loaded
        out = {}
        for label, ref in models.items():
            pair = load_for_eval(recipe, ref)
            rep = measure_latency_many({label: pair}, messages, **kw)[label].to_dict()
            rep["warnings"].append(
                "measured alone (the models do not fit in memory together): not interleaved"
            )
            out[label] = {**rep, "interleaved": False}
            del pair
            gc.collect()
    gc.collect()
    return out


def _symptom_checks(recipe: Recipe, general: list[Record]) -> SymptomChecks | None:
    """The symptom and safety checks, reading the general prompts even when the general loss is off."""
    cfg = recipe.evaluation
    if not (cfg.symptoms.enabled or cfg.safety.enabled):
        return None
    if not general and cfg.symptoms.enabled and cfg.symptoms.general_prompts:
        gl = cfg.retention.general_loss
        general = load_general_records(gl.path, cfg.symptoms.general_prompts)
    return SymptomChecks(recipe, general)


def _last_user(messages: Sequence[dict[str, Any]]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


def _parity(pairs, results, samples, recipe: Recipe, metric_kw: dict[str, Any]) -> list[dict[str, Any]]:
    """The parity entries (see :mod:`sftlab.evaluate.endpoint_parity`), each also printed as one line."""
    from sftlab.evaluate.endpoint_parity import parity_report

    if not pairs:
        return []
    primary = _primary(recipe.evaluation.metrics, metric_kw["custom"])
    kw = {k: v for k, v in metric_kw.items() if k in ("labels", "schema", "custom")}
    entries = parity_report(pairs, results, samples, metric=primary, seed=recipe.seed, **kw)
    for p in entries:
        console.print(p["message"], markup=False, highlight=False)
    return entries


def _parity_pairs(
    cfg, extra: Sequence[tuple[str, str]], models: dict[str, str]
) -> list[tuple[str, str, int]]:
    """``(model, endpoint, shown)`` from ``evaluation.parity`` and ``--parity``; labels checked before any work."""
    pairs = [(p.model, p.endpoint, p.shown) for p in cfg.parity] + [(m, e, 10) for m, e in extra]
    unknown = sorted({label for m, e, _ in pairs for label in (m, e) if label not in models})
    if unknown:
        raise SftlabError(
            f"evaluation.parity / --parity names {', '.join(unknown)}, not among the models to evaluate "
            f"({', '.join(models)}); use labels from --models or evaluation.endpoints"
        )
    return pairs


def _parity(pairs, results, samples, recipe: Recipe, metric_kw: dict[str, Any]) -> list[dict[str, Any]]:
    """The parity entries (see :mod:`sftlab.evaluate.endpoint_parity`), each also printed as one line."""
    from sftlab.evaluate.endpoint_parity import parity_report

    if not pairs:
        return []
    primary = _primary(recipe.evaluation.metrics, metric_kw["custom"])
    entries = parity_report(pairs, results, samples, metric=primary, seed=recipe.seed, **metric_kw)
    for p in entries:
        console.print(p["message"], markup=False, highlight=False)
    return entries


def _primary(metrics: Sequence[str], custom: Any) -> str:
    return metrics[0] if metrics else ("custom" if custom else "exact_match")
