"""The curation report: ``report.json`` (the numbers) and a self-contained ``report.html`` (plots inlined).

The HTML is built only from what the runner recorded (step stats, details,
profiles); nothing is recomputed. :func:`curation_summary` gives the lead's run
report the compact view.
"""

from __future__ import annotations

import json
from array import array
from pathlib import Path
from typing import Any

from sftlab.curate.result import CurationResult
from sftlab.curate.shard_stats import shards_line
from sftlab.errors import DataError
from sftlab.report import HtmlReport
from sftlab.utils.atomic import write_json


def write_report(
    result: CurationResult,
    before: array,
    after: array,
    *,
    title: str = "Curation report",
    folder: Path | None = None,
) -> None:
    """Write ``report.json`` and ``report.html`` into ``folder`` (default ``result.out_dir``)."""
    folder = Path(folder or result.out_dir)
    data = result.to_dict()
    write_json(folder / "report.json", data)
    render_html(data, before, after, title).save(folder / "report.html")


def curation_summary(out_dir: str | Path) -> dict[str, Any]:
    """Compact summary of a finished curation (for run reports): counts, reasons, per-step in/out, splits, files."""
    path = Path(out_dir) / "report.json"
    if not path.is_file():
        raise DataError(f"no curation report at {path}; run 'sftlab data curate RECIPE' first")
    data = json.loads(path.read_text(encoding="utf-8"))
    return {
        "records_in": data["records_in"],
        "added": data.get("added", 0),
        "kept": data["kept"],
        "rejected": data["rejected"],
        "rejected_by_reason": data["rejected_by_reason"],
        "accounting_ok": data["accounting_ok"],
        "steps": [
            {
                "step": s["step"],
                "in": s["in"],
                "out": s["out"],
                "rejected": s["rejected"],
                "flagged": s["flagged"],
            }
            for s in data["steps"]
        ],
        "splits": data.get("splits", {}),
        "diversity": data.get("diversity", {}),
        "selection": {
            s["step"]: {
                k: s["details"].get(k) for k in ("embedding_spread", "domains", "stratify", "warning")
            }
            for s in data["steps"]
            if "domains" in s["details"]
        },
        "files": data["files"],
    }


def selection_line(step: str, sel: dict[str, Any]) -> str:
    """One console line per select step: spread against random and the pool, code share, any warning.

    >>> selection_line("select", {"embedding_spread": {"selected": 0.96, "random_same_size": 0.94, "pool": 0.94},
    ...     "domains": {"code": {"selected_share": 33.0, "pool_share": 32.9}}})
    'select: spread 0.96 (random subset 0.94, pool 0.94); code 33.0% of the selection, 32.9% of the pool'
    """
    parts = []
    spread = sel.get("embedding_spread")
    if spread:
        parts.append(
            f"spread {spread['selected']} (random subset {spread['random_same_size']}, pool {spread['pool']})"
        )
    code = (sel.get("domains") or {}).get("code")
    if code:
        parts.append(f"code {code['selected_share']}% of the selection, {code['pool_share']}% of the pool")
    if sel.get("warning"):
        parts.append(f"warning: {sel['warning']}")
    return f"{step}: " + "; ".join(parts or ["no embeddings"])


# ── html ───────────────────────────────────────────────────────────────────


def _hist_figure(before: array, after: array):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    b = np.frombuffer(before, dtype=np.uint32) if len(before) else np.zeros(0)
    a = np.frombuffer(after, dtype=np.uint32) if len(after) else np.zeros(0)
    top = max(float(np.percentile(b, 99)) if b.size else 1.0, 1.0)
    bins = np.linspace(0, top, 40)
    ax.hist(np.clip(b, 0, top), bins=bins, alpha=0.5, label=f"before ({b.size:,})", color="#8a93a3")
    ax.hist(np.clip(a, 0, top), bins=bins, alpha=0.7, label=f"after ({a.size:,})", color="#2f6fde")
    ax.set_xlabel("record length (words, clipped at p99)")
    ax.set_ylabel("records")
    ax.legend()
    fig.tight_layout()
    return fig


def _bar_figure(counts: dict[str, int], xlabel: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = list(counts.items())[:30]
    fig, ax = plt.subplots(figsize=(7.5, 0.3 * len(items) + 1.2))
    ax.barh([k for k, _ in items][::-1], [v for _, v in items][::-1], color="#2f6fde")
    ax.set_xlabel(xlabel)
    fig.tight_layout()
    return fig


def render_html(data: dict[str, Any], before: array, after: array, title: str) -> HtmlReport:
    page = HtmlReport(title, subtitle=f"records in {data['records_in']:,} → kept {data['kept']:,}")
    page.section("Overview").cards(
        {
            "records in": data["records_in"],
            "added": data["added"],
            "kept": data["kept"],
            "rejected": data["rejected"],
            "distinct-2 (answers)": data["diversity"]["distinct_2"],
        }
    )
    ok = data["accounting_ok"]
    page.text(
        f"in {data['records_in']:,} + added {data['added']:,} = kept {data['kept']:,} + rejected {data['rejected']:,}"
        + (" ✓" if ok else " ✗ (accounting mismatch)"),
        "ok" if ok else "err",
    )

    read = next((s for s in data["steps"] if s["step"] == "read"), None)
    if read and read["details"].get("sources"):
        page.section("Sources").table(
            [
                {
                    "file": src["path"],
                    "format": src["format"],
                    "lines read": src["in"],
                    "records": src["kept"],
                    "rejected": src["rejected"],
                    "by reason": ", ".join(f"{k} {v}" for k, v in src["rejected_by_reason"].items()),
                    "repaired": ", ".join(f"{k} {v}" for k, v in src.get("repaired", {}).items()),
                }
                for src in read["details"]["sources"]
            ]
        )
        for shards in read["details"].get("shards", []):  # sharded sources (sftlab.curate.resume)
            page.text(shards_line(shards))

    page.section("Steps").table(
        [
            {
                "step": s["step"],
                "ran on": s["details"].get("ran_on", ""),
                "in": s["in"],
                "out": s["out"],
                "rejected": s["rejected"],
                "flagged": s["flagged"],
                "edited": s["edited"],
                "added": s["added"],
                "by reason": ", ".join(f"{k} {v}" for k, v in s["rejected_by_reason"].items()),
                "seconds": float(s["seconds"]),
            }
            for s in data["steps"]
        ]
    )

    page.section("Rejections")
    page.table([{"reason": k, "records": v} for k, v in data["rejected_by_reason"].items()])
    for s in data["steps"]:
        for reason, examples in s["examples"].items():
            page.heading(f"{s['step']} · {reason}")
            page.table([{"id": e["id"], "detail": e["detail"], "text": e["text"]} for e in examples])

    page.section("Lengths")
    page.figure(_hist_figure(before, after), "Record length before and after curation")
    lengths = data["lengths"]
    page.table([{"": k, **v} for k, v in (("before", lengths["before"]), ("after", lengths["after"]))])

    page.section("Tasks and labels")
    if data["tasks"]:
        page.figure(_bar_figure(data["tasks"], "kept records per task"), "Task distribution")
    page.table([{"balance of": k, **v} for k, v in data["balance"].items() if v])
    if data["labels"]:
        page.figure(_bar_figure(data["labels"], "kept records per label"), "Label distribution")

    page.section("Diversity")
    page.table([dict(data["diversity"])])
    _selection_sections(page, data)

    _cluster_sections(page, data)
    if data.get("splits"):
        page.section("Splits").table([data["splits"]])
        for s in data["steps"]:
            if "splits" in s["details"]:
                page.table([{"task": t, **c} for t, c in s["details"]["splits"].items()])
    return page


def _cluster_sections(page: HtmlReport, data: dict[str, Any]) -> None:
    dup_steps = [s for s in data["steps"] if "clusters" in s["details"]]
    page.section("Duplicate clusters")
    if not dup_steps:
        page.text("no dedup step ran")
    for s in dup_steps:
        d = s["details"]
        page.heading(f"{s['step']}: {d.get('cluster_count', 0):,} clusters (keep: {d.get('keep', 'first')})")
        page.table(
            [
                {
                    "kept": c["kept"],
                    "size": c["size"],
                    "removed": ", ".join(c["removed"][:10]),
                    "text": c.get("text", ""),
                }
                for c in d["clusters"][:50]
            ]
        )
    conflict_steps = [s for s in data["steps"] if "groups" in s["details"]]
    page.section("Conflict groups")
    if not conflict_steps:
        page.text("no conflicts step ran")
    for s in conflict_steps:
        d = s["details"]
        page.heading(f"{s['step']}: {d['conflict_groups']:,} groups (policy {d['policy']})")
        page.table(
            [
                {
                    "prompt": g["prompt"],
                    "answers": " | ".join(f"{c['answer']!r} ×{len(c['ids'])}" for c in g["classes"]),
                    "kept": ", ".join(g["kept"]),
                }
                for g in d["groups"][:50]
            ]
        )
    for s in data["steps"]:
        if "eval_sets" in s["details"]:
            page.section("Decontamination")
            page.table(
                [
                    {"eval set": k, "texts": v, "matches": s["details"].get("matches", {}).get(k, 0)}
                    for k, v in s["details"]["eval_sets"].items()
                ]
            )


def _selection_sections(page: HtmlReport, data: dict[str, Any]) -> None:
    """Per select step: spread vs random vs pool, and the domain and script shares (pool vs selection)."""
    selects = [s for s in data["steps"] if "domains" in s["details"]]
    page.section("Domains")
    if not selects:
        page.text("no select step ran: domains are measured on the pool and the selection of a select step")
    for s in selects:
        d = s["details"]
        spread = d.get("embedding_spread")
        if spread:
            verdict = spread.get("more_diverse_than_random")
            page.heading(f"{s['step']}: spread ({spread['measure']})")
            page.table(
                [
                    {
                        "selection": spread["selected"],
                        "random subset, same size": spread["random_same_size"],
                        "pool": spread["pool"],
                        "more diverse than random": "not checked" if verdict is None else verdict,
                    }
                ]
            )
            if verdict is False:
                page.text(d.get("warning", "the selection is not more diverse than random"), "err")
        if d.get("ceiling"):
            page.text(
                f"similarity ceiling {d['ceiling']['value']} (calibrated on the best {d['ceiling']['calibrated_on']} records)"
            )
        page.heading(f"{s['step']}: domains, pool vs selection (stratify: {d.get('stratify', 'none')})")
        page.table([{"domain": k, **v} for k, v in d["domains"].items()])
        page.heading(f"{s['step']}: scripts, pool vs selection")
        page.table([{"script": k, **v} for k, v in d.get("scripts", {}).items()])
