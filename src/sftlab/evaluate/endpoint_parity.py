"""Deployment parity: does the model behind an endpoint answer as it did in-process?

The most common failure after fine-tuning is a model that works in the trainer and breaks once
served or exported (wrong template, a stop token never emitted, endless output). With greedy
decoding the same weights and prompt give the same answer, so the share of identical answers is
the direct measure: ~100% for a faithful deployment; a quantised export may flip a few near-ties.
The primary metric's difference gets a paired bootstrap interval, and the first differing answers
are listed so a reader sees *how* they differ.

>>> p = parity(["a", "b", "c", "d"], ["a", "b", "x", "d"], ["a", "b", "c", "d"], ["1", "2", "3", "4"],
...            metric="exact_match", seed=0, shown=5)
>>> p["identical"], p["n"], p["differing"][0]["id"]
(3, 4, '3')
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from sftlab.errors import SftlabError
from sftlab.evaluate.metrics import compute_metrics
from sftlab.evaluate.stats import wilson_interval
from sftlab.report.html import HtmlReport

RESAMPLES = 1000


def parity(
    model_answers: Sequence[str],
    endpoint_answers: Sequence[str],
    expected: Sequence[str],
    ids: Sequence[str],
    *,
    metric: str,
    seed: int,
    shown: int,
    questions: Sequence[str] | None = None,
    **metric_kw: Any,
) -> dict[str, Any]:
    """Identical answers (share, 95% Wilson interval), the metric difference (endpoint − model, paired
    bootstrap 95% interval) and the first ``shown`` differing answers."""
    n = len(model_answers)
    same = [a.strip() == b.strip() for a, b in zip(model_answers, endpoint_answers, strict=True)]
    lo, hi = wilson_interval(sum(same), n)
    differing = [
        {
            "id": ids[i],
            "question": (questions[i] if questions else "")[:200],
            "in-process": model_answers[i],
            "endpoint": endpoint_answers[i],
            "first difference at": _first_difference(model_answers[i].strip(), endpoint_answers[i].strip()),
        }
        for i in range(n)
        if not same[i]
    ][:shown]
    return {
        "n": n,
        "identical": sum(same),
        "identical_share": sum(same) / n if n else None,
        "identical_ci95": [lo, hi],
        "metric": metric,
        **_metric_difference(model_answers, endpoint_answers, expected, metric, seed, **metric_kw),
        "differing": differing,
    }


def _metric_difference(a, b, refs, metric: str, seed: int, **metric_kw: Any) -> dict[str, Any]:
    names = [] if metric.startswith("custom") else [metric]  # a custom metric comes with metric_kw["custom"]

    def score(preds, idx):
        return compute_metrics(names, [preds[i] for i in idx], [refs[i] for i in idx], **metric_kw).get(
            metric
        )

    everything = list(range(len(refs)))
    ma, mb = score(a, everything), score(b, everything)
    if ma is None or mb is None:
        return {"model_value": ma, "endpoint_value": mb, "difference": None, "difference_ci95": None}
    rng = random.Random(seed)
    diffs = []
    for _ in range(RESAMPLES):
        idx = [rng.randrange(len(refs)) for _ in refs]
        x, y = score(a, idx), score(b, idx)
        if x is not None and y is not None:
            diffs.append(y - x)
    diffs.sort()
    ci = (
        [diffs[int(0.025 * len(diffs))], diffs[min(int(0.975 * len(diffs)), len(diffs) - 1)]]
        if diffs
        else None
    )
    return {"model_value": ma, "endpoint_value": mb, "difference": mb - ma, "difference_ci95": ci}


def _first_difference(a: str, b: str) -> int:
    """Character index where ``a`` and ``b`` part (the shorter length when one is a prefix of the other)."""
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def parity_report(
    pairs: Sequence[tuple[str, str, int]],
    results: dict[str, dict[str, Any]],
    samples: Sequence[Any],
    *,
    metric: str,
    seed: int,
    **metric_kw: Any,
) -> list[dict[str, Any]]:
    """One parity entry per ``(model label, endpoint label, shown)``; a label not evaluated is a clear error."""
    out = []
    for model, endpoint, shown in pairs:
        missing = [label for label in (model, endpoint) if label not in results]
        if missing:
            raise SftlabError(
                f"evaluation.parity names {', '.join(missing)}, not among the models evaluated "
                f"({', '.join(results)}); name labels from --models or evaluation.endpoints"
            )
        answers = {label: [x["produced"] for x in results[label]["answers"]] for label in (model, endpoint)}
        entry = parity(
            answers[model],
            answers[endpoint],
            [s.expected for s in samples],
            [s.id for s in samples],
            metric=metric,
            seed=seed,
            shown=shown,
            questions=[_last_user(s.messages) for s in samples],
            **metric_kw,
        )
        out.append(
            {"model": model, "endpoint": endpoint, **entry, "message": message(model, endpoint, entry)}
        )
    return out


def message(model: str, endpoint: str, p: dict[str, Any]) -> str:
    """One line: identical share with its interval, and the metric on both with the difference's interval."""
    lo, hi = p["identical_ci95"]
    share = p["identical_share"] or 0.0
    line = (
        f"parity {model} vs {endpoint}: {p['identical']}/{p['n']} identical greedy answers "
        f"({share:.1%}, 95% CI {lo:.1%} to {hi:.1%})"
    )
    if p["difference"] is not None:
        clo, chi = p["difference_ci95"] or (float("nan"), float("nan"))
        line += (
            f"; {p['metric']} {p['model_value']:.3f} in-process, {p['endpoint_value']:.3f} served "
            f"({p['difference']:+.3f}, 95% CI {clo:+.3f} to {chi:+.3f})"
        )
    return line


def section(page: HtmlReport, report: dict[str, Any]) -> None:
    """The report's "Deployment parity" section (nothing when no parity was asked for)."""
    entries = report.get("parity") or []
    if not entries:
        return
    page.section("Deployment parity")
    page.text(
        "The same eval prompts answered greedily in-process and behind the endpoint: a faithful deployment "
        "gives ~100% identical answers; differences point at the template, stop tokens or quantisation.",
        "note",
    )
    for p in entries:
        css = "ok" if p["identical"] == p["n"] else "note"
        page.text(p["message"], css)
        if p["differing"]:
            page.heading(f"First differing answers: {p['model']} vs {p['endpoint']}")
            page.table(
                [
                    {k: (str(v)[:200] if isinstance(v, str) else v) for k, v in d.items()}
                    for d in p["differing"]
                ]
            )


def _last_user(messages: Sequence[dict]) -> str:
    return next((str(m.get("content") or "") for m in reversed(messages) if m["role"] == "user"), "")
