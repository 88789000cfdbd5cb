"""``sftlab ui [RUNS_DIR]``: the local web workbench (runs, live training curve, data review)."""

from __future__ import annotations

import typer


def ui(
    runs_dir: str = typer.Argument("runs", help="Folder holding run folders (or one run folder)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on; any but loopback needs --token."),
    port: int = typer.Option(7860, help="TCP port."),
    token: str = typer.Option(
        None,
        envvar="SFTLAB_UI_TOKEN",
        help="Require this token (open the printed URL once; a cookie keeps it).",
    ),
    who: str = typer.Option(None, help="Name written with each review decision (default: your user name)."),
    recipes: str = typer.Option(
        ".", help="Folder whose recipe files (*.yaml) the 'start a run' page may run."
    ),
) -> None:
    """Browse runs and reports, watch training live, review curated records with the keyboard, start and stop runs."""
    from sftlab.ui.server import default_who, run_ui

    run_ui(runs_dir, host=host, port=port, token=token, who=who or default_who(), recipes=recipes)
