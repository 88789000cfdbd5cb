"""``sftlab train RECIPE`` and ``sftlab doctor RECIPE``.

Under several processes, run the same command through accelerate or torchrun::

    accelerate launch --config_file examples/accelerate/ddp.yaml -m sftlab.cli.main train recipe.yaml
"""

from __future__ import annotations

from pathlib import Path

import typer


def train(
    recipe: str = typer.Argument(..., help="Recipe YAML file."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. training.lr=2e-4."),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from the last checkpoint in OUTPUT_DIR/checkpoints."
    ),
    skip_doctor: bool = typer.Option(False, "--skip-doctor", help="Do not run the pre-flight checks first."),
) -> None:
    """Train the recipe's model on its data; writes OUTPUT_DIR/final, checkpoints and train/ metrics."""
    import os

    from sftlab.cli.common import err, recipe_from_cli
    from sftlab.train import run_training
    from sftlab.train.inputs import load_training_data

    cfg = recipe_from_cli(recipe, overrides)
    run_dir = Path(cfg.output_dir)
    train_records, eval_records, general = load_training_data(cfg, run_dir / "train")
    if not skip_doctor and int(os.environ.get("RANK", "0")) == 0:
        from sftlab.train.doctor import doctor

        for f in doctor(cfg, train_records):
            if f.severity != "info":
                err.print(f"[yellow]doctor {f.severity}[/] {f.code}: {f.why}; fix: {f.fix}", highlight=False)
    result = run_training(cfg, train_records, eval_records, run_dir, resume=resume, general_records=general)
    if int(os.environ.get("RANK", "0")) == 0:
        from sftlab.cli.common import out

        loss = f"{result.eval_loss:.4f}" if result.eval_loss is not None else "n/a"
        out.print(
            f"trained {result.steps} steps; eval loss {loss}; final model: {result.final_dir}",
            highlight=False,
            soft_wrap=True,
        )


def doctor(
    recipe: str = typer.Argument(..., help="Recipe YAML file."),
    overrides: list[str] = typer.Argument(None, help="Dotted overrides, e.g. training.lr=2e-4."),
    json_out: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
) -> None:
    """Check a recipe and its data before spending GPU time; exits 1 when a finding is an error."""
    from rich.table import Table

    from sftlab.cli.common import out, print_json, recipe_from_cli
    from sftlab.train.doctor import doctor as run_doctor
    from sftlab.train.inputs import load_training_data

    cfg = recipe_from_cli(recipe, overrides)
    train_records, _, _ = load_training_data(cfg)
    findings = run_doctor(cfg, train_records)
    if json_out:
        print_json([f.to_dict() for f in findings])
    elif not findings:
        out.print(f"doctor: no findings for {recipe} ({len(train_records)} training records)")
    else:
        table = Table("severity", "check", "why", "what to change", show_lines=True)
        colour = {"error": "red", "warning": "yellow", "info": "cyan"}
        for f in findings:
            table.add_row(f"[{colour[f.severity]}]{f.severity}[/]", f.code, f.why, f.fix)
        out.print(table)
    errors = sum(f.severity == "error" for f in findings)
    if errors:  # a SftlabError is how the CLI turns a user-fixable problem into exit code 1
        from sftlab.errors import SftlabError

        raise SftlabError(
            f"doctor: {errors} error finding{'s' if errors > 1 else ''}; fix {'them' if errors > 1 else 'it'} before training"
        )
