"""``sftlab data preview RECIPE``: render the recipe's data and show which tokens are trained."""

from __future__ import annotations

import itertools

import typer


def preview(
    recipe: str = typer.Argument(..., help="Recipe YAML file."),
    overrides: list[str] = typer.Argument(
        None, help="Dotted overrides, e.g. render.train_on=last_assistant."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    html: str = typer.Option(None, "--html", help="Also write a self-contained HTML preview to this file."),
    n: int = typer.Option(5, "--n", min=0, help="Records to show with trained tokens highlighted."),
    limit: int = typer.Option(2000, "--limit", min=1, help="Check at most this many records per source."),
) -> None:
    """Show records with trained tokens highlighted; check EOS, prompt prefix, empty labels, truncation,
    thinking mode; warn about unfilled {{ variables }} in trained text."""
    from sftlab.cli.common import print_json, recipe_from_cli
    from sftlab.data.io import read_source
    from sftlab.errors import DataError, SftlabError
    from sftlab.models import load_tokenizer
    from sftlab.render.preview import preview_report, problems, save_preview_html
    from sftlab.render.templates import resolve_template

    r = recipe_from_cli(recipe, overrides)
    if not r.data.sources:
        raise DataError(f"{recipe}: data.sources is empty; add at least one source (path: data.jsonl)")
    tokenizer = load_tokenizer(
        r.model.name, revision=r.model.revision, trust_remote_code=r.model.trust_remote_code
    )
    resolve_template(tokenizer, r.render.template, r.render.template_kwargs)
    records = itertools.chain.from_iterable(
        itertools.islice(read_source(src, on_error=r.data.on_error, repairs=r.data.repair), limit)
        for src in r.data.sources
    )
    report = preview_report(records, tokenizer, r.render, n=n)
    if html:
        save_preview_html(report, html, title=f"Mask preview · {r.name}")
    if as_json:
        print_json(report)
    else:
        _print(report, html)
    if not report["ok"]:  # loud in scripts and CI: a failed check is a training bug waiting to happen
        raise SftlabError(
            f"mask preview: {len(problems(report))} check(s) failed; fix the data or render settings"
        )


def _print(report: dict, html: str | None) -> None:
    from sftlab.cli.common import out
    from sftlab.render.preview import problems, rendering_summary, spans_rich, warnings

    for sample in report["samples"]:
        out.rule(
            f"{sample['id'] or '(no id)'} · {sample['source'] or 'data'} · {sample['trained']}/{sample['tokens']} trained"
        )
        out.print(spans_rich(sample["spans"]), highlight=False)
    out.rule("checks")
    for name, s in report["sources"].items():
        out.print(
            f"{name}: {s['rendered']:,}/{s['records']:,} rendered into {s['samples']:,} samples, trained share {s['trained_token_share']:.1%}, "
            f"EOS trained {'yes' if s['eot_trained'] else 'NO'}, prompt is prefix {'yes' if s['prompt_is_prefix'] else 'NO'}, "
            f"truncated {s['truncated']:,}, dropped too long {s['dropped_too_long']:,}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    out.print(rendering_summary(report), markup=False, highlight=False, soft_wrap=True)
    for line in warnings(report):
        out.print(f"warning: {line}", style="yellow", markup=False, highlight=False, soft_wrap=True)
    for line in problems(report):
        out.print(f"problem: {line}", style="red", markup=False, highlight=False, soft_wrap=True)
    if html:
        out.print(f"wrote {html}", markup=False, highlight=False)
