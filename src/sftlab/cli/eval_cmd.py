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
        help="Models to compare: embedded name, folder, run folder or checkpoint, an OpenAI-compatible "
        "endpoint openai:http(s)://host/v1#model (key from $OPENAI_API_KEY, or the variable its "
        "evaluation.endpoints entry names), or an evaluation.endpoints label; LABEL:REF to name one. "
        "Default: the recipe's model (base), the run's final model when it exists, and the recipe's endpoints.",
    ),
    parity: list[str] = typer.Option(
        None,
        "--parity",
        help="MODEL=ENDPOINT: compare the greedy answers of a model evaluated in-process with the same model "
        "behind an endpoint (labels of --models); adds to evaluation.parity.",
    ),
    data: str = typer.Option(
        None, "--data", help="Eval records file; default: data.eval_sources, else the run's held-out split."
    ),
    out: str = typer.Option(None, "--out", help="Report folder; default: <output_dir>/eval."),
) -> None:
    """Evaluate base, in-context and fine-tuned models side by side; write eval/report.html and report.json."""
    from sftlab.cli.common import out as console
    from sftlab.cli.common import recipe_from_cli
    from sftlab.evaluate.endpoint import ref_of
    from sftlab.evaluate.run import run_evaluation

    overrides = [a for a in args or [] if "=" in a and ":" not in a.split("=", 1)[0]]
    extra = [a for a in args or [] if a not in overrides]
    if extra and not models:
        raise SftlabError(f"unexpected argument(s) {' '.join(extra)}: overrides look like key.path=value")
    rec = recipe_from_cli(recipe, overrides)
    endpoints = {e.label: ref_of(e) for e in rec.evaluation.endpoints}
    labelled = parse_models([*(models or []), *extra], rec.model.name, endpoints) if models else None
    pairs = [parse_parity(p) for p in parity or []]
    records, train = eval_data(rec, data)
    out_dir = Path(out) if out else Path(rec.output_dir) / "eval"
    report = run_evaluation(rec, records, out_dir, models=labelled, train_records=train, parity=pairs)
    primary = report["primary_metric"]
    for label, result in report["models"].items():
        scored = [f"{k} {v['accuracy']:.1%}" for k, v in (result.get("benchmarks") or {}).items()]
        na = [f"{k} n/a" for k in result.get("not_measured") or {} if "loss" not in k]
        bench = ", ".join(scored + na)
        value = result["overall"].get(primary)
        console.print(
            f"{label:>14}: {primary} {'n/a' if value is None else f'{value:.3f}'}"
            + (f"  {bench}" if bench else ""),
            highlight=False,
        )


def parse_models(refs: list[str], base_name: str, endpoints: dict[str, str] | None = None) -> dict[str, str]:
    """``["base", "ft:runs/a", "runs/b"]`` → labels; the recipe's model is ``base``, others their folder name,
    an endpoint its model name; a label of ``evaluation.endpoints`` is that endpoint.

    >>> parse_models(["smollm2-135m-instruct", "ft:runs/a", "runs/b/"], "smollm2-135m-instruct")
    {'base': 'smollm2-135m-instruct', 'ft': 'runs/a', 'b': 'runs/b/'}
    >>> parse_models(["served:openai:http://127.0.0.1:8000/v1#run", "openai:https://host/v1#big"], "x")
    {'served': 'openai:http://127.0.0.1:8000/v1#run', 'big': 'openai:https://host/v1#big'}
    """
    endpoints = endpoints or {}
    out: dict[str, str] = {}
    for ref in refs:
        if ref in endpoints:
            out[ref] = endpoints[ref]
            continue
        label, sep, rest = ref.partition(":")
        if sep and label and "/" not in label and rest and label != "openai":
            out[label] = rest
            continue
        if ref.startswith("openai:"):
            url, _, model = ref.removeprefix("openai:").partition("#")
            name = model or url.split("//")[-1].split("/")[0]
        else:
            name = "base" if ref == base_name else (Path(ref).name or ref)
        while name in out:
            name += "'"
        out[name] = ref
    return out


def parse_parity(text: str) -> tuple[str, str]:
    """``"fine-tuned=served"`` → ``("fine-tuned", "served")``; anything else is one clear line.

    >>> parse_parity("fine-tuned=served")
    ('fine-tuned', 'served')
    """
    model, sep, endpoint = text.partition("=")
    if not sep or not model or not endpoint:
        raise SftlabError(f"--parity {text}: use MODEL=ENDPOINT with labels of --models (fine-tuned=served)")
    return model, endpoint


def eval_data(recipe, data: str | None):
    """``(eval records, train records)`` from ``--data``, ``data.eval_sources`` or the curated run folder."""
    from sftlab.curate.shards import has_kept
    from sftlab.data.io import read_records
    from sftlab.pipeline.data import curated_records, eval_records

    if data:
        return list(read_records(data)), None
    curation = Path(recipe.output_dir) / "curation"
    if has_kept(curation) or (curation / "train.jsonl").is_file():
        train, validation = curated_records(curation)
        return eval_records(recipe, train, validation)[1], train
    if recipe.data.eval_sources:
        return eval_records(recipe, [], [])[1], None
    raise SftlabError(
        f"no eval data: pass --data FILE, set data.eval_sources, or run 'sftlab run' first (no {curation})"
    )
