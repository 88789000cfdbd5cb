"""``sftlab recipe show|schema|check``."""

from __future__ import annotations

import typer
import yaml

from sftlab.cli.common import out, print_json, recipe_from_cli
from sftlab.recipe import Recipe

app = typer.Typer(help="Inspect and validate recipes.", no_args_is_help=True)


@app.command("show")
def show(
    recipe: str = typer.Argument(..., help="Recipe YAML file."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. training.lr=2e-4."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of YAML."),
) -> None:
    """Print the fully resolved recipe (defaults filled in, overrides applied)."""
    resolved = recipe_from_cli(recipe, overrides).model_dump(mode="json")
    if as_json:
        print_json(resolved)
    else:
        out.print(
            yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True),
            end="",
            markup=False,
            highlight=False,
        )


@app.command("schema")
def schema() -> None:
    """Print the recipe's JSON schema (for editors and validation)."""
    print_json(Recipe.model_json_schema())


def missing_data(r: Recipe) -> list[str]:
    """One problem per data source whose file or folder cannot be read (hub names are not checked)."""
    from sftlab.data.containers import container_of
    from sftlab.data.llamafactory import resolve_source
    from sftlab.errors import DataError

    problems = []
    for key in ("sources", "eval_sources"):
        for i, src in enumerate(getattr(r.data, key)):
            try:
                container_of(resolve_source(src).path)
            except DataError as err:
                problems.append(f"data.{key}.{i}.path: {err}")
    return problems


@app.command("check")
def check(
    recipe: str = typer.Argument(..., help="Recipe YAML file."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides."),
) -> None:
    """Validate a recipe and that its data files exist; exit code 2 with every problem listed."""
    r = recipe_from_cli(recipe, overrides)
    problems = missing_data(r)
    if problems:
        from sftlab.errors import RecipeError

        raise RecipeError(problems, source=recipe)
    out.print(
        f"[green]ok[/green]: {recipe} ({r.name}, method {r.training.method}, {len(r.data.sources)} data source(s))"
    )
