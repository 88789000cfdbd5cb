"""The main job, top-down: curate → preview → train → evaluate → report.

Each stage writes into the run folder and then a completion marker holding the
fingerprint of its inputs (recipe sections, data file hashes, upstream
fingerprints). A re-run skips every stage whose marker matches; an interrupted
run continues where it stopped (training resumes from its last checkpoint).
``until`` stops after a stage; ``from_stage`` re-runs from a stage on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sftlab import __version__
from sftlab.errors import SftlabError
from sftlab.pipeline import state
from sftlab.pipeline.data import curated_records, eval_records, general_sources, read_raw, source_fingerprints
from sftlab.recipe import Recipe
from sftlab.utils.atomic import write_text
from sftlab.utils.hashing import fingerprint
from sftlab.utils.progress import console

STAGES = ["curate", "preview", "train", "evaluate", "report"]


@dataclass
class RunContext:
    """What the stages share: the recipe, the run folder and upstream fingerprints."""

    recipe: Recipe
    run_dir: Path
    fingerprints: dict[str, str] = field(default_factory=dict)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def curation_dir(self) -> Path:
        return self.run_dir / "curation"


def run_pipeline(
    recipe: Recipe,
    *,
    until: str | None = None,
    from_stage: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Run the stages in order; returns ``{stage: summary}``."""
    for name, value in (("--until", until), ("--from", from_stage)):
        if value is not None and value not in STAGES:
            raise SftlabError(f"{name} {value}: unknown stage; choose one of {', '.join(STAGES)}")
    if from_stage and until and STAGES.index(until) < STAGES.index(from_stage):
        raise SftlabError(
            f"--from {from_stage} --until {until}: '{until}' comes before '{from_stage}' "
            f"(stages run in the order {', '.join(STAGES)})"
        )
    run_dir = Path(recipe.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(
        run_dir / "recipe.resolved.yaml", yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False)
    )
    ctx = RunContext(recipe, run_dir)
    first = STAGES.index(from_stage) if from_stage else 0
    last = STAGES.index(until) if until else len(STAGES) - 1
    if force:
        state.clear_from(run_dir, STAGES)
    elif from_stage:
        state.clear_from(run_dir, STAGES[first:])

    started = time.perf_counter()
    for index, name in enumerate(STAGES[: last + 1]):
        stage_fp = fingerprint(
            __version__, name, _stage_inputs(ctx, name), [ctx.fingerprints.get(s) for s in STAGES[:index]]
        )
        ctx.fingerprints[name] = stage_fp
        if state.is_done(run_dir, name, stage_fp):
            ctx.summaries[name] = state.read_summary(run_dir, name) or {}
            console.print(f"[dim]· {name}: up to date, skipped[/dim]")
            continue
        console.rule(f"[bold]{name}")
        t0 = time.perf_counter()
        summary = _RUNNERS[name](ctx)
        summary["seconds"] = round(time.perf_counter() - t0, 1)
        ctx.summaries[name] = summary
        state.mark_done(run_dir, name, stage_fp, summary)
        console.print(f"[green]✓ {name}[/green] in {summary['seconds']:.0f}s")
    console.print(f"[bold]run finished[/bold] in {time.perf_counter() - started:.0f}s → {run_dir}")
    if STAGES[last] == "report":
        _print_headline(run_dir)
    return ctx.summaries


def _print_headline(run_dir: Path) -> None:
    """The run's headline table at the end of the terminal output, where the user looks."""
    import json

    from sftlab.pipeline.headline import print_headline

    report = run_dir / "report.json"
    if report.is_file():
        rows = json.loads(report.read_text(encoding="utf-8")).get("headline_rows") or []
        print_headline([tuple(r) for r in rows], console)


def _stage_inputs(ctx: RunContext, name: str) -> Any:
    r = ctx.recipe
    return {
        "curate": lambda: [
            r.data.model_dump(mode="json"),
            r.curation.model_dump(mode="json"),
            source_fingerprints(r),
            r.seed,
        ],
        "preview": lambda: [r.model.model_dump(mode="json"), r.render.model_dump(mode="json")],
        "train": lambda: [
            r.model.model_dump(mode="json"),
            r.training.model_dump(mode="json"),
            r.render.model_dump(mode="json"),
            r.seed,
        ],
        "evaluate": lambda: [r.evaluation.model_dump(mode="json")],
        "report": lambda: [],
    }[name]()


def _curate(ctx: RunContext) -> dict[str, Any]:
    from sftlab.curate.executors import build_executor
    from sftlab.curate.pipeline import curate
    from sftlab.curate.report import curation_summary
    from sftlab.curate.steps.registry import build_steps

    recipe = ctx.recipe
    steps = build_steps(recipe.curation.steps, model=recipe.model.name) if recipe.curation.enabled else []
    result = curate(
        read_raw(recipe, ctx.curation_dir),
        steps,
        ctx.curation_dir,
        title=f"Curation · {recipe.name}",
        executor=build_executor(recipe.curation),
        shard_records=recipe.curation.output.shard_records,
    )
    reasons = ", ".join(f"{k} {v}" for k, v in result.rejected.most_common())
    console.print(
        f"in {result.records_in:,} = kept {result.kept:,} + rejected {result.rejected_total:,}"
        + (f" ({reasons})" if reasons else ""),
        markup=False,
        highlight=False,
    )
    return curation_summary(ctx.curation_dir)


def _split(ctx: RunContext):
    train, validation = curated_records(ctx.curation_dir)
    return eval_records(ctx.recipe, train, validation)


def _tokenizer(recipe: Recipe):
    from sftlab.models import load_tokenizer
    from sftlab.render import resolve_template

    tokenizer = load_tokenizer(
        recipe.model.name, revision=recipe.model.revision, trust_remote_code=recipe.model.trust_remote_code
    )
    return resolve_template(tokenizer, recipe.render.template, recipe.render.template_kwargs)


def _preview(ctx: RunContext) -> dict[str, Any]:
    from sftlab.render.preview import preview_report, problems, save_preview_html
    from sftlab.utils.atomic import write_json

    train, _ = _split(ctx)
    report = preview_report(train, _tokenizer(ctx.recipe), ctx.recipe.render, n=4)
    html_path = save_preview_html(report, ctx.run_dir / "preview" / "preview.html")
    write_json(ctx.run_dir / "preview" / "preview.json", report)
    for name, stats in report["sources"].items():
        console.print(
            f"  {name}: {stats['trained_token_share']:.1%} of tokens trained, "
            f"EOS trained after every assistant turn: {'yes' if stats['eot_trained'] else 'NO'}, "
            f"inference prompt is a prefix: {'yes' if stats['prompt_is_prefix'] else 'NO'}",
            markup=False,
            highlight=False,
        )
    if not report["ok"]:
        raise SftlabError(f"mask preview found problems (see {html_path}): " + "; ".join(problems(report)))
    return {k: v for k, v in report.items() if k != "samples"}


def _train(ctx: RunContext) -> dict[str, Any]:
    from sftlab.train.run import run_training

    train, held = _split(ctx)
    general = general_sources(ctx.recipe)
    general_records = [r for r in train if r.meta.source in general]
    # Resume only checkpoints of an interrupted run of these same inputs; others are cleared by run_training.
    has_checkpoints = (ctx.run_dir / "checkpoints").is_dir() and any((ctx.run_dir / "checkpoints").iterdir())
    resume = has_checkpoints and state.started_with(ctx.run_dir, "train") == ctx.fingerprints["train"]
    if has_checkpoints and not resume:
        console.print(
            "[dim]checkpoints in the run folder come from other inputs: training from the start[/dim]"
        )
    state.mark_started(ctx.run_dir, "train", ctx.fingerprints["train"])
    result = run_training(
        ctx.recipe, train, held, ctx.run_dir, resume=resume, general_records=general_records or None
    )
    return dict(result.summary)


def _evaluate(ctx: RunContext) -> dict[str, Any]:
    from sftlab.evaluate.run import run_evaluation

    train, held = _split(ctx)
    models = {"base": ctx.recipe.model.name, "fine-tuned": str(ctx.run_dir)}
    return run_evaluation(ctx.recipe, held, ctx.run_dir / "eval", models=models, train_records=train)


def _report(ctx: RunContext) -> dict[str, Any]:
    from sftlab.pipeline.report import write_run_report

    path = write_run_report(ctx.run_dir, ctx.recipe)
    console.print(f"report: {path}", markup=False, highlight=False)
    return {"html": str(path), "json": str(path.with_suffix(".json"))}


_RUNNERS: dict[str, Callable[[RunContext], dict[str, Any]]] = {
    "curate": _curate,
    "preview": _preview,
    "train": _train,
    "evaluate": _evaluate,
    "report": _report,
}
