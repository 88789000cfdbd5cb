"""The records a ``sftlab train`` run reads: training sources, eval sources (or a held-out share), general data."""

from __future__ import annotations

from pathlib import Path

from sftlab.data.record import Record
from sftlab.errors import SftlabError
from sftlab.recipe.schema import Recipe
from sftlab.recipe.sections.data import SourceSection
from sftlab.train.split import stratified_split


def read_all(source: SourceSection, recipe: Recipe, rejects_dir: Path | None = None) -> list[Record]:
    """Every record of one source; bad ones fail or go to ``rejects_dir`` per ``data.on_error``."""
    from sftlab.data.io import read_source

    rejects = None
    if recipe.data.on_error == "skip" and rejects_dir is not None:
        rejects = rejects_dir / f"{source.name or Path(source.path).stem}.rejects.jsonl"
    records = list(
        read_source(source, on_error=recipe.data.on_error, rejects_path=rejects, repairs=recipe.data.repair)
    )
    name = source.name or Path(source.path).stem
    for r in records:  # per-source weights, metrics and doctor shares key on this name
        r.meta.source = r.meta.source or name
        if source.task and not r.meta.task:
            r.meta.task = source.task
    return records


def load_training_data(
    recipe: Recipe, rejects_dir: Path | None = None
) -> tuple[list[Record], list[Record], list[Record]]:
    """``(train, eval, general)`` records for ``recipe``.

    Eval comes from ``data.eval_sources``, else a task-stratified ``data.eval_fraction``
    of the training records. General data for EWC is ``training.ewc.source``, else the
    sources marked ``general: true``.
    """
    if not recipe.data.sources:
        raise SftlabError("data.sources is empty: add at least one training source (path: data.jsonl)")
    train: list[Record] = []
    general: list[Record] = []
    for source in recipe.data.sources:
        records = read_all(source, recipe, rejects_dir)
        train += records
        if source.general:
            general += records
    if recipe.data.eval_sources:
        evals = [r for s in recipe.data.eval_sources for r in read_all(s, recipe, rejects_dir)]
    else:
        train, evals = stratified_split(train, recipe.data.eval_fraction, recipe.seed)
    if recipe.training.ewc.source is not None:
        general = read_all(recipe.training.ewc.source, recipe, rejects_dir)
    return train, evals, general
