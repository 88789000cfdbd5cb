"""One endpoint's evaluation, the rows a local model gets: answers and task metrics, bad cases,
benchmarks (when it scores given text), streamed latency, and its in-context row.

What an endpoint cannot measure is listed under ``not_measured`` with the reason, and the report
shows n/a there: the per-record loss and the general-instruction loss need the chat template to
find the answer tokens, which an endpoint does not expose.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sftlab.evaluate.badcases import bad_cases
from sftlab.evaluate.endpoint import Endpoint, endpoint_section, generate, is_endpoint, stream_latency
from sftlab.evaluate.endpoint_logprobs import run_benchmarks
from sftlab.evaluate.icl import IclPrompter
from sftlab.evaluate.samples import EvalSample
from sftlab.evaluate.tasks import scored_answers
from sftlab.recipe import Recipe
from sftlab.utils.progress import console

LOSS_NA = (
    "an endpoint gives log-probabilities of text, not of the answer tokens its own chat template places; "
    "not measured"
)


def connect(recipe: Recipe, label: str, ref: str) -> Endpoint:
    """The client for ``ref``, with the recipe's settings for ``label`` (key variable, timeout, concurrency)."""
    return Endpoint(label, endpoint_section(label, ref, recipe.evaluation.endpoints))


def endpoint_asker(recipe: Recipe, label: str, ref: str):
    """The symptom checks' ``ask`` for an endpoint: one-turn prompts through chat.completions, greedy."""
    endpoint = connect(recipe, label, ref)

    def ask(prompts: Sequence[str], max_new_tokens: int, description: str) -> list[Any]:
        console.print(f"{description}: {len(prompts)} prompts to {label}", highlight=False)
        messages = [[{"role": "user", "content": p}] for p in prompts]
        return generate(endpoint, messages, max_new_tokens=max_new_tokens, seed=recipe.seed)

    return ask


def check_endpoints(recipe: Recipe, models: dict[str, str]) -> None:
    """Reach every endpoint in ``models`` once (its model list) before any work: a bad reference, an
    unreachable server or a refused key is one line now; a model the endpoint does not list is a warning."""
    for label, ref in models.items():
        if not is_endpoint(ref):
            continue
        endpoint = connect(recipe, label, ref)
        listed = endpoint.listed()
        if listed is not None and endpoint.model not in listed:
            shown = ", ".join(listed[:5]) + (", ..." if len(listed) > 5 else "")
            console.print(
                f"[yellow]warning:[/] endpoint {label} does not list model '{endpoint.model}' (it lists {shown})",
                highlight=False,
            )


def evaluate_endpoint(
    recipe: Recipe,
    label: str,
    ref: str,
    samples: Sequence[EvalSample],
    benchmarks: Sequence[Any],
    *,
    icl: IclPrompter | None,
    general: bool,
    metric_kw: dict[str, Any],
) -> tuple[dict[str, dict[str, Any]], list[dict], dict[str, Any]]:
    """``(report rows by label, bad cases, {benchmark: MCResult})`` of one endpoint (and its ``+icl`` row)."""
    cfg = recipe.evaluation
    endpoint = connect(recipe, label, ref)
    console.print(f"evaluating [bold]{label}[/] ({endpoint.ref})", highlight=False)
    result, produced = _answers(endpoint, recipe, samples, [s.messages for s in samples], metric_kw)
    mc, na = run_benchmarks(endpoint, benchmarks)
    result["benchmarks"] = {name: r.to_dict() for name, r in mc.items()}
    result["loss"] = {"mean": None, "records": 0, "skipped": 0, "worst": []}
    not_measured = {"loss": LOSS_NA, **na}
    if general:
        not_measured["general_loss"] = LOSS_NA
    for what, why in na.items():
        console.print(f"[yellow]{label}: {what} n/a:[/] {why}", highlight=False)
    if cfg.latency.enabled:
        lat = cfg.latency
        result["latency"] = stream_latency(
            endpoint,
            [s.messages for s in samples[: lat.endpoint_prompts]],
            max_new_tokens=cfg.max_new_tokens,
            tools=[s.tools for s in samples[: lat.endpoint_prompts]],
            repeats=lat.repeats,
            warmup=lat.warmup,
            max_spread=lat.max_spread,
        )
    rows = {label: {"reference": endpoint.ref, "endpoint": True, **result, "not_measured": not_measured}}
    bad = bad_cases(label, samples, produced)
    if icl is not None:
        icl_result, icl_produced = _answers(
            endpoint, recipe, samples, [icl.messages(s) for s in samples], metric_kw
        )
        rows[label + "+icl"] = {
            "reference": f"{endpoint.ref} + {cfg.icl_k} examples in the prompt",
            "endpoint": True,
            **icl_result,
            "icl_k": cfg.icl_k,
        }
        bad += bad_cases(label + "+icl", samples, icl_produced)
    return rows, bad, mc


def _answers(
    endpoint: Endpoint,
    recipe: Recipe,
    samples: Sequence[EvalSample],
    prompts: list[list[dict[str, Any]]],
    metric_kw: dict[str, Any],
) -> tuple[dict[str, Any], list[str]]:
    cfg = recipe.evaluation
    gens = generate(
        endpoint,
        prompts,
        max_new_tokens=cfg.max_new_tokens,
        seed=recipe.seed,
        tools=[s.tools for s in samples],
    )
    return scored_answers(cfg.metrics, samples, gens, **metric_kw)
