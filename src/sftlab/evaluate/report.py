"""The evaluation report as one self-contained HTML page, built only from the report dict (``report.json``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sftlab.report.html import HtmlReport

BAD_CASES_SHOWN = 25


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    return plt


def write_html(report: dict[str, Any], path: str | Path, *, bad_cases: Sequence[dict] = ()) -> Path:
    """Write ``report.html``: metrics side by side, retention, ICL, latency, losses, bad cases, sweep."""
    page = HtmlReport(
        f"Evaluation — {report['name']}",
        f"{report['eval_samples']} eval samples, models: " + ", ".join(report["models"]),
    )
    add_sections(page, report, bad_cases=bad_cases)
    return page.save(path)


def add_sections(page: HtmlReport, report: dict[str, Any], *, bad_cases: Sequence[dict] = ()) -> HtmlReport:
    """Append the evaluation sections to ``page`` (also used by the ``sftlab run`` report)."""
    _summary(page, report)
    _task_table(page, report)
    _confusion(page, report)
    _benchmarks(page, report)
    _latency(page, report)
    _worst_loss(page, report)
    _bad_cases(page, report, bad_cases)
    _sweep(page, report)
    return page


def _summary(page: HtmlReport, report: dict[str, Any]) -> None:
    page.section("Summary")
    primary = report["primary_metric"]
    cards = {f"{label}: {primary}": r["overall"].get(primary, 0.0) for label, r in report["models"].items()}
    page.cards(cards)
    for label, verdict in report["retention"].items():
        css = "ok" if verdict["passed"] else ("err" if verdict["status"] == "fail" else "note")
        page.text(f"{label}: {verdict['message']}", css)


def _task_table(page: HtmlReport, report: dict[str, Any]) -> None:
    page.section("Task metrics")
    rows = []
    for label, r in report["models"].items():
        row = {"model": label, "n": r["n"], **r["overall"]}
        for name, b in (r.get("benchmarks") or {}).items():
            row[f"{name} acc"] = b["accuracy"]
        if r.get("loss", {}).get("mean") is not None:
            row["eval loss"] = r["loss"]["mean"]
        if "latency" in r:
            row["tokens/s"] = r["latency"]["tokens_per_s"]
        rows.append(row)
    page.table(rows)
    icl = [label for label in report["models"] if label.endswith("+icl")]
    if icl:
        page.text(
            f"{', '.join(icl)}: the base model with {report['settings']['icl_k']} training examples in its prompt "
            "and no training — the baseline fine-tuning has to beat.",
            "note",
        )
    per_task = [
        {"model": label, "task": task, **m}
        for label, r in report["models"].items()
        for task, m in (r.get("per_task") or {}).items()
    ]
    if per_task:
        page.heading("Per task")
        page.table(per_task)


def _confusion(page: HtmlReport, report: dict[str, Any]) -> None:
    mats = [(label, r["confusion"]) for label, r in report["models"].items() if r.get("confusion")]
    if not mats:
        return
    page.section("Confusion matrices")
    plt = _plt()
    fig, axes = plt.subplots(1, len(mats), figsize=(4.2 * len(mats), 3.8), squeeze=False)
    for ax, (label, conf) in zip(axes[0], mats, strict=True):
        matrix = conf["matrix"]
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(len(conf["columns"])), conf["columns"], rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(conf["rows"])), conf["rows"], fontsize=8)
        for i, row in enumerate(matrix):
            for j, v in enumerate(row):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        ax.set_title(label)
        ax.set_xlabel("produced")
        ax.set_ylabel("expected")
    fig.tight_layout()
    page.figure(fig, "rows: expected label, columns: produced label (<other> = outside the label set)")


def _benchmarks(page: HtmlReport, report: dict[str, Any]) -> None:
    base = report["models"][report["base"]].get("benchmarks") or {}
    if not base:
        return
    page.section("Benchmarks and retention")
    rows = []
    for label, r in report["models"].items():
        for name, b in (r.get("benchmarks") or {}).items():
            verdict = report["retention"].get(label, {})
            rows.append(
                {
                    "model": label,
                    "benchmark": name,
                    "accuracy": b["accuracy"],
                    "n": b["n"],
                    "delta vs base": b["accuracy"] - base[name]["accuracy"] if name in base else None,
                    "retention": verdict.get("status", "base" if label == report["base"] else "")
                    if name == verdict.get("benchmark", name)
                    else "",
                }
            )
    page.table(rows)
    first = next(iter(base))
    others = [
        (label, r["benchmarks"][first])
        for label, r in report["models"].items()
        if label != report["base"] and first in (r.get("benchmarks") or {})
    ]
    if others:
        label, tuned = others[0]
        deltas = sorted(
            (
                {
                    "subject": s,
                    "base": a,
                    label: tuned["per_subject"].get(s),
                    "delta": tuned["per_subject"].get(s, 0) - a,
                }
                for s, a in base[first]["per_subject"].items()
            ),
            key=lambda d: d["delta"],
        )
        page.heading(f"{first}: subjects that moved most ({label} vs base)")
        page.table(deltas[:8] + deltas[-4:] if len(deltas) > 12 else deltas)


def _latency(page: HtmlReport, report: dict[str, Any]) -> None:
    lat = [(label, r["latency"]) for label, r in report["models"].items() if r.get("latency")]
    if not lat:
        return
    page.section("Latency")
    page.table(
        [
            {
                "model": label,
                "k (s/token)": x["k_s_per_token"],
                "b ≈ TTFT (s)": x["b_s"],
                "R²": x["r2"],
                "tokens/s": x["tokens_per_s"],
                "prompt tokens": x["prompt_tokens"],
            }
            for label, x in lat
        ]
    )
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, x in lat:
        xs = [p[0] for p in x["points"]]
        line = ax1.plot(xs, [p[1] for p in x["points"]], "o", label=f"{label} (measured)")[0]
        ax1.plot(
            xs,
            [x["k_s_per_token"] * v + x["b_s"] for v in xs],
            "-",
            color=line.get_color(),
            label=f"{label}: t = {x['k_s_per_token'] * 1e3:.2f} ms·x + {x['b_s'] * 1e3:.1f} ms (R² {x['r2']:.3f})",
        )
        if x.get("ttft"):
            ax2.plot([p[0] for p in x["ttft"]], [p[1] * 1e3 for p in x["ttft"]], "o-", label=label)
    ax1.set_xlabel("generated tokens")
    ax1.set_ylabel("seconds")
    ax1.legend(fontsize=7)
    ax1.grid(alpha=0.3)
    ax2.set_xlabel("prompt tokens")
    ax2.set_ylabel("time to first token (ms)")
    ax2.legend(fontsize=7)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    page.figure(
        fig, "generation time against generated tokens with the fitted line; TTFT against prompt length"
    )


def _worst_loss(page: HtmlReport, report: dict[str, Any]) -> None:
    rows = [
        {
            "model": label,
            "id": w["id"],
            "loss": w["loss"],
            "tokens": w["tokens"],
            "task": w["task"],
            "text": w["text"][:200],
        }
        for label, r in report["models"].items()
        for w in (r.get("loss") or {}).get("worst", [])[:10]
    ]
    if not rows:
        return
    page.section("Highest-loss records")
    page.text("Records the model finds least likely; often mislabelled, truncated or off-task data.")
    page.table(rows)


def _bad_cases(page: HtmlReport, report: dict[str, Any], bad_cases: Sequence[dict]) -> None:
    page.section("Bad cases")
    page.table([{"model": label, "wrong answers": n} for label, n in report["bad_cases"].items()])
    rows = []
    for label in report["models"]:
        mine = [b for b in bad_cases if b["model"] == label][:BAD_CASES_SHOWN]
        rows += [
            {
                "model": label,
                "id": b["id"],
                "question": _last_user(b["prompt"])[:200],
                "expected": b["expected"][:150],
                "produced": b["produced"][:150],
            }
            for b in mine
        ]
    page.table(rows)
    page.text("All of them are in bad_cases.jsonl next to this report.")


def _sweep(page: HtmlReport, report: dict[str, Any]) -> None:
    sweep = report.get("sweep")
    if not sweep:
        return
    page.section("Checkpoint sweep")
    page.table([{k: v for k, v in r.items() if k != "checkpoint"} for r in sweep["rows"]])
    page.text(
        f"best trade-off: checkpoint-{sweep['best_step']} (highest {sweep['task_metric']} within the "
        "retention threshold)",
        "ok",
    )
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    steps = [r["step"] for r in sweep["rows"]]
    ax1.plot(steps, [r["task"] for r in sweep["rows"]], "o-", label=sweep["task_metric"])
    if any(r.get("benchmark") is not None for r in sweep["rows"]):
        ax1.plot(steps, [r.get("benchmark") for r in sweep["rows"]], "s-", label=f"{sweep['benchmark']} acc")
    if sweep.get("base_benchmark") is not None:
        ax1.axhline(sweep["base_benchmark"], color="grey", linestyle=":", label="base benchmark")
    ax1.axvline(sweep["best_step"], color="green", alpha=0.4, label="best")
    ax1.set_xlabel("step")
    ax1.legend(fontsize=7)
    ax1.grid(alpha=0.3)
    curve = sweep.get("train_curve") or []
    for key, style in (("loss", "-"), ("eval_loss", "o-")):
        pts = [(r["step"], r[key]) for r in curve if key in r]
        if pts:
            ax2.plot(*zip(*pts, strict=True), style, label=key)
    ax2.set_xlabel("step")
    ax2.set_ylabel("loss")
    ax2.grid(alpha=0.3)
    if curve:
        ax2.legend(fontsize=7)
    fig.tight_layout()
    page.figure(
        fig, "task score and benchmark accuracy per checkpoint; train/eval loss from train/metrics.jsonl"
    )


def _last_user(messages: Sequence[dict]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
