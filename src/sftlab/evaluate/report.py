"""The evaluation report as one self-contained HTML page, built only from the report dict (``report.json``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sftlab.report.html import HtmlReport

BAD_CASES_SHOWN = 25
NA = "n/a"
"""Shown for a metric that does not apply to a task (no labels, no JSON answers): never a misleading 0."""


def plt():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as pyplot

    return pyplot


def write_html(report: dict[str, Any], path: str | Path, *, bad_cases: Sequence[dict] = ()) -> Path:
    """Write ``report.html``: metrics side by side, retention, ICL, latency, losses, bad cases, sweep."""
    page = HtmlReport(
        f"Evaluation — {report['name']}",
        f"{report['eval_samples']} eval samples, models: " + ", ".join(report["models"]),
    )
    add_sections(page, report, bad_cases=bad_cases, summary_title="Summary")
    return page.save(path)


def add_sections(
    page: HtmlReport,
    report: dict[str, Any],
    *,
    bad_cases: Sequence[dict] = (),
    summary_title: str = "Evaluation summary",
) -> HtmlReport:
    """Append the evaluation sections to ``page``; the ``sftlab run`` report has a Summary of its own, so
    this one is titled apart unless the page is the evaluation's alone."""
    from sftlab.evaluate import report_benchmarks as rb
    from sftlab.evaluate import report_symptoms as rs
    from sftlab.evaluate.endpoint_parity import section as parity_section

    _summary(page, report, summary_title)
    _task_table(page, report)
    _confusion(page, report)
    rb.benchmarks(page, report)
    rs.symptoms(page, report)
    rs.safety(page, report)
    rb.latency(page, report)
    parity_section(page, report)
    _worst_loss(page, report)
    _bad_cases(page, report, bad_cases)
    rb.sweep(page, report)
    return page


def shown(value: Any) -> Any:
    """``n/a`` for a metric that does not apply (``None``); the value otherwise."""
    return NA if value is None else value


def _summary(page: HtmlReport, report: dict[str, Any], title: str) -> None:
    page.section(title)
    primary = report["primary_metric"]
    cards = {f"{label}: {primary}": shown(r["overall"].get(primary)) for label, r in report["models"].items()}
    page.cards(cards)
    for label, verdict in report["retention"].items():
        css = {"pass": "ok", "fail": "err"}.get(verdict["status"], "note")
        page.text(f"{label}: {verdict['message']}", css)
    from sftlab.evaluate.report_symptoms import summary_lines

    for text, css in summary_lines(report):
        page.text(text, css)
    for label, r in report["models"].items():
        shift = (r.get("general_loss") or {}).get("shift")
        if shift:
            page.text(f"{label}: {shift['message']}", "note" if shift["verdict"] == "rose" else "ok")


def _task_table(page: HtmlReport, report: dict[str, Any]) -> None:
    page.section("Task metrics")
    rows = []
    for label, r in report["models"].items():
        row = {"model": label, "n": r["n"], **{k: shown(v) for k, v in r["overall"].items()}}
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
        {"model": label, "task": task, **{k: shown(v) for k, v in m.items()}}
        for label, r in report["models"].items()
        for task, m in (r.get("per_task") or {}).items()
    ]
    if per_task:
        page.heading("Per task")
        page.table(per_task)
        page.text(f"{NA}: the metric does not apply to the task (no labels, or no JSON answers, to compare).")


def _confusion(page: HtmlReport, report: dict[str, Any]) -> None:
    """One matrix per task (its own labels) and model: tasks down, models across."""
    models = [(label, r["confusions"]) for label, r in report["models"].items() if r.get("confusions")]
    if not models:
        return
    tasks = list(dict.fromkeys(t for _, c in models for t in c))
    page.section("Confusion matrices")
    pyplot = plt()
    size = max(len(c[t]["columns"]) for _, c in models for t in c)
    side = 1.2 + 0.45 * size
    fig, axes = pyplot.subplots(
        len(tasks), len(models), figsize=(side * len(models), side * len(tasks)), squeeze=False
    )
    for row, task in enumerate(tasks):
        for col, (label, confusions) in enumerate(models):
            ax = axes[row][col]
            if task not in confusions:
                ax.axis("off")
                continue
            _matrix(ax, confusions[task], f"{label} — {task}")
    fig.tight_layout()
    page.figure(
        fig, "per task, over that task's labels: rows expected, columns produced (<other> = not one of them)"
    )


def _matrix(ax, conf: dict[str, Any], title: str) -> None:
    """A heat map whose numbers stay readable: white on the dark cells, black on the light ones."""
    matrix = conf["matrix"]
    top = max((v for row in matrix for v in row), default=0) or 1
    ax.imshow(matrix, cmap="Blues", vmin=0, vmax=top)
    ax.set_xticks(range(len(conf["columns"])), conf["columns"], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(conf["rows"])), conf["rows"], fontsize=8)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(
                j, i, str(v), ha="center", va="center", fontsize=8, color="white" if v > top / 2 else "black"
            )
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("produced", fontsize=8)
    ax.set_ylabel("expected", fontsize=8)


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


def _last_user(messages: Sequence[dict]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
