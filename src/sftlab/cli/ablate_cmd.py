"""``sftlab ablate RECIPE``: the recipe trained on raw, curated and random data, evaluated side by side."""

from __future__ import annotations

from pathlib import Path

import typer


def ablate(
    recipe: str = typer.Argument(..., help="Recipe YAML file."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. training.epochs=1."),
    variants: str = typer.Option(
        "raw,curated,random",
        "--variants",
        help="Comma-separated: raw (no curation), curated, random (raw subset the size of the curated set).",
    ),
    fractions: str = typer.Option(
        "",
        "--fractions",
        help="Also train on these shares of the curated set, e.g. 0.25,0.5 (diminishing returns).",
    ),
    out: Path = typer.Option(None, "--out", help="Ablation folder; default <output_dir>/ablation."),
) -> None:
    """Train the same recipe on data variants and evaluate them on the same sets in one report."""
    from sftlab.cli.common import recipe_from_cli
    from sftlab.errors import SftlabError
    from sftlab.pipeline.ablate import run_ablation

    try:
        shares = [float(x) for x in fractions.split(",") if x.strip()]
    except ValueError:
        raise SftlabError(f"--fractions {fractions}: not numbers (e.g. 0.25,0.5)") from None
    names = [v.strip() for v in variants.split(",") if v.strip()]
    run_ablation(recipe_from_cli(recipe, overrides), variants=names, fractions=shares, out_dir=out)
