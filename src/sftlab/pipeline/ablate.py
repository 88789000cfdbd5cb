"""``sftlab ablate``: does curation pay on *your* data? The same recipe trained on data variants.

Variants (each a run folder that ``sftlab eval`` can reopen):

- ``curated``: the recipe's own run (``output_dir``; reused when up to date);
- ``raw``: every record that reads, no curation step;
- ``random``: a seeded random subset of the raw records, the size of the curated training set
  (same amount of data, no selection: what curation's choice is worth);
- ``curated-25%``…: seeded subsets of the curated set (the diminishing-returns curve), on request.

All are trained with the same recipe and evaluated in ONE evaluation (one base-model pass, the
same eval records and retention questions), so their differences carry paired tests. Latency
and the checkpoint sweep are skipped there: the question is the data, not the speed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sftlab.data.record import Record
from sftlab.errors import SftlabError
from sftlab.evaluate.retention import RetentionError
from sftlab.pipeline.data import curated_records, eval_records, general_sources, read_raw
from sftlab.recipe import Recipe
from sftlab.utils.atomic import write_text
from sftlab.utils.progress import console

CURATED = "curated"


@dataclass
class Variant:
    """One training set of the ablation and where its run lives."""

    name: str
    records: list[Record]
    run_dir: Path
    note: str


def run_ablation(
    recipe: Recipe,
    *,
    variants: Sequence[str] = ("raw", CURATED, "random"),
    fractions: Sequence[float] = (),
    out_dir: Path | None = None,
) -> dict[str, Any]:
    """Train every variant and evaluate them together; write ``<out>/report.json`` and ``report.html``."""
    from sftlab.pipeline.ablate_report import ablation_summary, write_ablation_report
    from sftlab.pipeline.run import run_pipeline

    unknown = [v for v in variants if v not in ("raw", CURATED, "random")]
    if unknown:
        raise SftlabError(f"--variants {','.join(unknown)}: unknown; choose from raw, curated, random")
    if any(not 0 < f < 1 for f in fractions):
        raise SftlabError("--fractions: each must be between 0 and 1 (0.25 = a quarter of the curated set)")
    run_dir = Path(recipe.output_dir)
    out = Path(out_dir) if out_dir else run_dir / "ablation"
    console.rule("[bold]curated: the recipe's own run (curate → preview → train)")
    run_pipeline(recipe, until="train")
    curated, validation = curated_records(run_dir / "curation")
    curated, held = eval_records(recipe, curated, validation)
    raw = _raw_records(recipe, out / "read", held)
    plan = _plan(recipe, variants, fractions, curated, raw, run_dir, out)
    for v in plan:
        if v.name != CURATED:
            _train_variant(recipe, v, held)
    report = _evaluate(recipe, plan, held, curated, out)
    summary = ablation_summary(report, plan, curated_name=CURATED)
    write_ablation_report(out, recipe, summary, report)
    return summary


def _raw_records(recipe: Recipe, staging: Path, held: Sequence[Record]) -> list[Record]:
    """Every record that reads (with the recipe's read repairs), minus exact copies of eval prompts: the
    eval set must stay unseen by every variant, or the comparison measures memory."""
    from sftlab.curate.steps.text import norm_key

    staging.mkdir(parents=True, exist_ok=True)
    eval_prompts = {norm_key(getattr(r, "instruction", "") or "") for r in held} - {""}
    records = list(read_raw(recipe, staging))
    kept = [r for r in records if norm_key(getattr(r, "instruction", "") or "") not in eval_prompts]
    if len(kept) < len(records):
        console.print(
            f"raw: {len(records) - len(kept)} records repeat an eval prompt word for word; left out"
        )
    return kept


def _plan(recipe, variants, fractions, curated, raw, run_dir: Path, out: Path) -> list[Variant]:
    rng = random.Random(recipe.seed)
    plan = []
    for name in variants:
        if name == CURATED:
            plan.append(Variant(CURATED, curated, run_dir, f"{len(curated)} records kept by curation"))
        elif name == "raw":
            plan.append(Variant("raw", raw, out / "raw", f"all {len(raw)} records that read, no curation"))
        else:
            size = min(len(curated), len(raw))
            pick = rng.sample(raw, size)
            plan.append(Variant("random", pick, out / "random", f"{size} raw records drawn at random"))
    for f in fractions:
        size = max(1, round(len(curated) * f))
        pick = random.Random(recipe.seed + 1).sample(curated, size)
        name = f"{CURATED}-{f:.0%}"
        plan.append(
            Variant(name, pick, out / name, f"{size} of the {len(curated)} curated records ({f:.0%})")
        )
    return plan


def _train_variant(recipe: Recipe, variant: Variant, held: Sequence[Record]) -> None:
    """Train ``variant`` in its own run folder (skipped when its final model exists for the same records)."""
    from sftlab.train.run import run_training
    from sftlab.utils.hashing import fingerprint

    marker = variant.run_dir / "ablation.fingerprint"
    key = fingerprint(recipe.model_dump(mode="json"), [r.to_dict() for r in variant.records])
    if (variant.run_dir / "final").is_dir() and marker.is_file() and marker.read_text() == key:
        console.print(f"[dim]· {variant.name}: trained already, skipped[/dim]")
        return
    console.rule(f"[bold]{variant.name}: {variant.note}")
    own = recipe.model_copy(update={"output_dir": str(variant.run_dir)})
    variant.run_dir.mkdir(parents=True, exist_ok=True)
    general = general_sources(recipe)
    run_training(
        own,
        variant.records,
        held,
        variant.run_dir,
        general_records=[r for r in variant.records if r.meta.source in general] or None,
    )
    # so that `sftlab eval <run>/recipe.resolved.yaml` reopens this variant like any run
    write_text(
        variant.run_dir / "recipe.resolved.yaml", yaml.safe_dump(own.model_dump(mode="json"), sort_keys=False)
    )
    write_text(marker, key)


def _evaluate(recipe: Recipe, plan: Sequence[Variant], held, curated, out: Path) -> dict[str, Any]:
    from sftlab.evaluate.run import run_evaluation

    ev = recipe.evaluation.model_copy(update={"sweep": False})
    ev.latency = ev.latency.model_copy(update={"enabled": False})
    rec = recipe.model_copy(update={"evaluation": ev})
    models = {"base": recipe.model.name, **{v.name: str(v.run_dir) for v in plan}}
    console.rule("[bold]evaluate every variant on the same sets")
    try:
        return run_evaluation(rec, list(held), out / "eval", models=models, train_records=curated)
    except RetentionError as err:  # a tripped gate is a finding of the ablation, not the end of it
        console.print(f"[yellow]{err}[/]", highlight=False)
        return json.loads((out / "eval" / "report.json").read_text(encoding="utf-8"))
