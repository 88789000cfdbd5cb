"""Generated reference docs: committed copies match the code, cover every key, examples validate."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import sftlab.recipe.sections
from sftlab.docs import REGENERATE, cli_reference_markdown, recipe_reference_markdown, recipe_tables
from sftlab.recipe import load_recipe
from sftlab.recipe.base import Section

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"
NOT_RECIPES = EXAMPLES / "accelerate"  # accelerate launcher configs, not recipes


@pytest.fixture(scope="module")
def recipe_md() -> str:
    return recipe_reference_markdown()


@pytest.fixture(scope="module")
def cli_md() -> str:
    import typer

    from sftlab.cli.main import app

    return cli_reference_markdown(typer.main.get_command(app))


@pytest.mark.parametrize("name", ["recipe.md", "cli.md"])
def test_committed_docs_are_up_to_date(name, recipe_md, cli_md):
    fresh = {"recipe.md": recipe_md, "cli.md": cli_md}[name]
    path = DOCS / name
    assert path.exists(), f"docs/{name} is missing; run `{REGENERATE}`"
    assert path.read_text(encoding="utf-8") == fresh, (
        f"docs/{name} is stale (the code changed since it was generated); run `{REGENERATE}`"
    )


def _section_classes() -> set[type[Section]]:
    """Every recipe section model defined in ``sftlab.recipe.sections`` and the schema."""
    modules = ["sftlab.recipe.schema"] + [
        f"sftlab.recipe.sections.{m.name}" for m in pkgutil.iter_modules(sftlab.recipe.sections.__path__)
    ]
    found = set()
    for name in modules:
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and issubclass(obj, Section)
                and obj is not Section
                and obj.__module__ == module.__name__
            ):
                found.add(obj)
    return found


def test_every_section_is_documented(recipe_md):
    documented = {t.model for t in recipe_tables()}
    # an abstract base (StepBase) counts as documented through the subclasses that carry its fields
    missing = [
        cls.__name__
        for cls in _section_classes()
        if cls not in documented
        and not (cls.__subclasses__() and all(sub in documented for sub in cls.__subclasses__()))
    ]
    assert not missing, f"sections not reachable from Recipe, so not in docs/recipe.md: {sorted(missing)}"


def test_every_field_of_every_section_appears(recipe_md):
    for table in recipe_tables():
        assert f" {table.title}\n" in recipe_md, table.title
        want = set(table.model.model_fields)
        got = {row.name for row in table.rows}
        assert got == want, f"{table.title}: fields {sorted(want - got)} missing"
        for row in table.rows:
            expected = f"{table.path}.{row.name}" if table.path else row.name
            assert row.path == expected
            assert f"| `{row.path}` |" in recipe_md, f"{row.path} not in docs/recipe.md"
    # spot checks of the shapes the task promises
    for key in ("training.lora.r", "data.sources[].path", "evaluation.mmlu.subset", "synth.teacher.base_url"):
        assert f"| `{key}` |" in recipe_md
    for step in ("normalize", "minhash_dedup", "decontaminate", "score", "select"):
        assert f"### `curation.steps[]` — `type: {step}`" in recipe_md
    assert "#### `curation.steps[].judge` (`type: score`)" in recipe_md


def test_cli_reference_lists_every_command(cli_md):
    for path in (
        "sftlab train",
        "sftlab run",
        "sftlab docs",
        "sftlab recipe check",
        "sftlab model info",
        "sftlab data convert",
        "sftlab data curate",
    ):
        assert f"`{path}`\n\n```text\n{path} " in cli_md, path
    assert "| `--out` | option | text | `docs` |" in cli_md


def _example_recipes() -> list[Path]:
    return sorted(p for p in EXAMPLES.rglob("*.yaml") if NOT_RECIPES not in p.parents)


def test_example_recipes_are_found_recursively():
    found = _example_recipes()
    assert EXAMPLES / "quickstart.yaml" in found
    assert not any(NOT_RECIPES in p.parents for p in found)
    # every YAML under examples/ is either a recipe tested below or an accelerate config
    everything = sorted(EXAMPLES.rglob("*.yaml"))
    assert len(everything) == len(found) + len(list(NOT_RECIPES.rglob("*.yaml")))


@pytest.mark.parametrize("path", _example_recipes(), ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_recipe_validates(path):
    recipe = load_recipe(path)
    assert recipe.name


def test_docs_command_writes_and_checks(tmp_path, recipe_md, cli_md):
    from sftlab.cli.main import main

    out = tmp_path / "docs"
    assert main(["docs", "--check", "--out", str(out)]) == 1  # nothing there yet
    assert main(["docs", "--out", str(out)]) == 0
    assert (out / "recipe.md").read_text(encoding="utf-8") == recipe_md
    assert (out / "cli.md").read_text(encoding="utf-8") == cli_md
    assert main(["docs", "--check", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["cli.md", "recipe.md"]  # no temp files left
