"""Shared CLI plumbing: consoles, recipe loading, JSON output."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

from sftlab.recipe import Recipe, load_recipe

# Off a terminal (a log file, CI) lines are never wrapped at 80 columns.
out = Console(soft_wrap=not sys.stdout.isatty())
err = Console(stderr=True, soft_wrap=not sys.stderr.isatty())


def recipe_from_cli(path: str | None, overrides: list[str] | None) -> Recipe:
    """Load the recipe named on the command line with its ``key=value`` overrides."""
    return load_recipe(path, overrides or [])


def print_json(obj: Any) -> None:
    """Plain JSON on stdout (no colour codes), for ``--json`` flags and scripts."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")
    sys.stdout.flush()
