"""``sftlab eval RECIPE [--models A B ...]``: several models on the same sets, one report."""

from __future__ import annotations

from pathlib import Path

import typer

from sftlab.errors import SftlabError


def eval_command(
    recipe: str = typer.Argument(..., help="Recipe YAML file."),
    args: list[str] = typer.Argument(
        None, help="Dotted overrides (evaluation.icl_k=4); words without '=' after --models are more models."
    ),
    models: list[str] = typer.Option(
        None,
        "--models",
        "-m",
        help="Models to compare: embedded name, folder, run folder or checkpoint; LABEL:REF to name one. "
        "Default: the recipe's model (base) and the run's final model when it exists.",
    ),
    data: str = typer.Option(
        None, "--data", help="Eval records file; default: data.eval_sources, else the run's held-out split."
    ),
    out: str = typer.Option(None, "--out", help="Report folder; default: <output_dir>/eval."),
) -> None:
    """Evaluate base, in-context and fine-tuned models side by side; write eval/report.html and report.json."""
    from sftlab.cli.common import out as console
    from sftlab.cli.common import recipe_from_cli
    from sftlab.evaluate.run import run_evaluation

    overrides = [a for a in args or [] if "=" in a and ":" not in a.split("=", 1)[0]]
    extra = [a for a in args or [] if a not in overrides]
    if extra and not models:
        raise SftlabError(f"unexpected argument(s) {' '.join(extra)}: overrides look like key.path=value")
    rec = recipe_from_cli(recipe, overrides)
    labelled = parse_models([*(models or []), *extra], rec.model.name) if models else None
    records, train = eval_data(rec, data)
    out_dir = Path(out) if out else Path(rec.output_dir) / "eval"
    report = run_evaluation(rec, records, out_dir, models=labelled, train_records=train)
    primary = report["primary_metric"]
    for label, result in report["models"].items():
        bench = ", ".join(f"{k} {v['accuracy']:.1%}" for k, v in (result.get("benchmarks") or {}).items())
        value = result["overall"].get(primary)
        console.print(
            f"{label:>14}: {primary} {'n/a' if value is None else f'{value:.3f}'}"
            + (f"  {bench}" if bench else ""),
            highlight=False,
        )


def parse_models(refs: list[str], base_name: str) -> dict[str, str]:
    """``["base", "ft:runs/a", "runs/b"]`` → labels; the recipe's model is ``base``, others their folder name.

    >>> parse_models(["smollm2-135m-instruct", "ft:runs/a", "runs/b/"], "smollm2-135m-instruct")
    {'base': 'smollm2-135m-instruct', 'ft': 'runs/a', 'b': 'runs/b/'}
    """
    out: dict[str, str] = {}
    for ref in refs:
        label, sep, rest = ref.partition(":")
        if sep and label and "/" not in label and rest:
            out[label] = rest
            continue
        name = "base" if ref == base_name else (Path(ref).name or ref)
        while name in out:
            name += "'"
        out[name] = ref
    return out


def eval_data(recipe, data: str | None):
    """``(eval records, train records)`` from ``--data``, ``data.eval_sources`` or the curated run folder."""
    from sftlab.data.io import read_records
    from sftlab.pipeline.data import curated_records, eval_records

    if data:
        return list(read_records(data)), None
    curation = Path(recipe.output_dir) / "curation"
    if (curation / "kept.jsonl").is_file() or (curation / "train.jsonl").is_file():
        train, validation = curated_records(curation)
        return eval_records(recipe, train, validation)[1], train
    if recipe.data.eval_sources:
        return eval_records(recipe, [], [])[1], None
    raise SftlabError(
        f"no eval data: pass --data FILE, set data.eval_sources, or run 'sftlab run' first (no {curation})"
    )
