"""``sftlab data synth``: generate SFT data with a teacher model."""

from __future__ import annotations

import typer

from sftlab.cli.common import out, print_json, recipe_from_cli


def synth(
    recipe: str = typer.Argument(..., help="Recipe YAML file with a synth: section."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. synth.teacher.concurrency=8."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Generate records with a teacher behind an OpenAI-compatible endpoint (resumable: re-run to continue)."""
    from sftlab.synth import run_synth

    summary = run_synth(recipe_from_cli(recipe, overrides))
    if as_json:
        print_json(summary)
        return
    usage = summary["usage"]
    out.print(
        f"[green]{summary['pipeline']}[/green]: kept {summary['kept']}, rejected {summary['rejected_total']} "
        f"→ {summary['output']}"
    )
    for reason, count in summary["rejected_by_reason"].items():
        out.print(f"  rejected {reason}: {count}")
    failed = sum(usage["failed_requests"].values())
    out.print(
        f"requests: {usage['requests_sent']} sent, {usage['cache_hits']} from cache, {usage['retries']} retries, "
        f"{failed} failed; tokens {usage['prompt_tokens']} in / {usage['completion_tokens']} out; "
        f"cost {usage['cost']:.4f}"
    )
