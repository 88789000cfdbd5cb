"""Two or more runs side by side: headlines, the recipe settings that differ, the loss curves together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException

from sftlab.ui import runs

MISSING = "—"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (lists stay values).

    >>> flatten({"training": {"lr": 0.001, "method": "lora"}, "name": "x"})
    {'training.lr': 0.001, 'training.method': 'lora', 'name': 'x'}
    """
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, inner in value.items():
        out.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
    return out


def recipe_diff(folders: list[Path]) -> list[tuple[str, list[Any]]]:
    """``(dotted key, [value per run])`` for every recipe setting that is not the same in all runs."""
    import yaml

    flat = []
    for folder in folders:
        try:
            recipe = yaml.safe_load((folder / "recipe.resolved.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            recipe = {}
        flat.append(flatten(recipe) if isinstance(recipe, dict) else {})
    keys = sorted(set().union(*flat))
    rows = []
    for key in keys:
        values = [f.get(key, MISSING) for f in flat]
        if any(v != values[0] for v in values[1:]):
            rows.append((key, values))
    return rows


def register(app: FastAPI, render, run_dir) -> None:
    @app.get("/compare", response_class=HTMLResponse)
    def compare(request: Request):
        names = request.query_params.getlist("r")
        if len(names) < 2:
            raise HTTPException(400, "choose two or more runs to compare (?r=A&r=B)")
        folders = [run_dir(request, n) for n in names]
        infos = [runs.load_run(request.app.state.root, f) for f in folders]
        keys = list(dict.fromkeys(k for info in infos for k in info.headline))
        return render(
            request, "compare.html.jinja", runs=infos, names=names, keys=keys, diff=recipe_diff(folders),
            missing=MISSING,
        )  # fmt: skip
