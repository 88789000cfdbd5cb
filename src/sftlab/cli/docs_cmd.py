"""``sftlab docs --out docs/``: regenerate the recipe and CLI reference from the code."""

from __future__ import annotations

import typer


def docs(
    ctx: typer.Context,
    out: str = typer.Option("docs", "--out", help="Folder that receives recipe.md and cli.md."),
    check: bool = typer.Option(
        False, "--check", help="Write nothing; exit 1 if a file is missing or differs from the code."
    ),
) -> None:
    """Write the recipe reference (recipe.md) and CLI reference (cli.md), generated from the code."""
    from pathlib import Path

    from sftlab.docs import REGENERATE, write_docs
    from sftlab.errors import SftlabError

    root = ctx.find_root().command  # the CLI hands itself over: no import back
    stale = write_docs(out, root, check=check)
    if check:
        if stale:  # SftlabError, not typer.Exit: main() runs click non-standalone, which swallows Exit codes
            raise SftlabError(f"stale: {', '.join(stale)} in {out}; run `{REGENERATE}`")
        typer.echo(f"up to date: {out}")
        return
    for name in ("recipe.md", "cli.md"):
        state = "written" if name in stale else "unchanged"
        typer.echo(f"{state}: {Path(out) / name}")
