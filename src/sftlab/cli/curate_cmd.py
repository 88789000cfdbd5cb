"""``sftlab data curate RECIPE``: read the recipe's sources, run its curation steps, write kept/rejects/report."""

from __future__ import annotations

from pathlib import Path

import typer


def curate(
    recipe: str = typer.Argument(..., help="Recipe YAML file."),
    overrides: list[str] = typer.Argument(
        None, help="Dotted overrides, e.g. curation.steps.0.threshold=0.8."
    ),
    out: str = typer.Option(None, "--out", help="Output folder (default: <output_dir>/curation)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Curate the recipe's data: in = kept + rejected, every removal with its step and reason."""
    from sftlab.cli.common import out as console
    from sftlab.cli.common import print_json, recipe_from_cli
    from sftlab.curate.executors import build_executor
    from sftlab.curate.pipeline import curate as run_curation
    from sftlab.curate.report import curation_summary, selection_line
    from sftlab.curate.shard_stats import shards_line
    from sftlab.curate.steps.registry import build_steps
    from sftlab.data.sources import read_sources
    from sftlab.errors import DataError

    r = recipe_from_cli(recipe, overrides)
    if not r.data.sources:
        raise DataError(f"{recipe}: data.sources is empty; add at least one source (path: data.jsonl)")
    out_dir = Path(out) if out else Path(r.output_dir) / "curation"
    steps = build_steps(r.curation.steps, model=r.model.name) if r.curation.enabled else []
    result = run_curation(
        read_sources(r.data, out_dir),
        steps,
        out_dir,
        title=f"Curation · {r.name}",
        executor=build_executor(r.curation),
        shard_records=r.curation.output.shard_records,
    )
    summary = curation_summary(out_dir)
    if as_json:
        print_json(summary)
        return
    reasons = ", ".join(f"{k} {v}" for k, v in summary["rejected_by_reason"].items())
    console.print(
        f"in {result.records_in:,}"
        + (f" + added {result.added:,}" if result.added else "")
        + f" = kept {result.kept:,} + rejected {result.rejected_total:,}"
        + (f" ({reasons})" if reasons else ""),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    read = result.steps[0] if result.steps and result.steps[0].step == "read" else None
    repaired = read.details.get("repaired", {}) if read else {}
    for s in summary["steps"]:
        note = ""
        if s["step"] == "read" and repaired:
            note = "  repaired " + ", ".join(f"{k} {v:,}" for k, v in repaired.items())
        console.print(
            f"  {s['step']:<22} in {s['in']:>9,}  out {s['out']:>9,}{note}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    for d in read.details.get("shards", []) if read else []:  # sharded sources (sftlab.curate.resume)
        console.print(f"  {shards_line(d)}", markup=False, highlight=False)
    for name, sel in summary.get("selection", {}).items():
        console.print(selection_line(name, sel), markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"kept: {summary['files']['kept']}  report: {out_dir / 'report.html'}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
