"""``sftlab run RECIPE``: the whole loop, from raw data to an evaluated model and one report."""

from __future__ import annotations

import typer


def run(
    recipe: str = typer.Argument(..., help="Recipe YAML file."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. training.lr=2e-4."),
    until: str = typer.Option(
        None, "--until", help="Stop after this stage (curate, preview, train, evaluate, report)."
    ),
    from_stage: str = typer.Option(None, "--from", help="Re-run from this stage on, even if up to date."),
    force: bool = typer.Option(False, "--force", help="Re-run every stage."),
) -> None:
    """Curate → preview → train → evaluate → report; up-to-date stages are skipped, interrupted runs resume."""
    from sftlab.cli.common import recipe_from_cli
    from sftlab.pipeline import run_pipeline

    run_pipeline(recipe_from_cli(recipe, overrides), until=until, from_stage=from_stage, force=force)
