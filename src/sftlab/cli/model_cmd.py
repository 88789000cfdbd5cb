"""``sftlab model info`` and ``sftlab generate``."""

from __future__ import annotations

import typer
from rich.table import Table

from sftlab.cli.common import out, print_json

app = typer.Typer(help="Inspect models.", no_args_is_help=True)


@app.command("info")
def info(
    model: str = typer.Argument(..., help="Embedded name, hub id, local folder or .gguf file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    trust_remote_code: bool = typer.Option(False, help="Allow code shipped with a hub model to run."),
) -> None:
    """Architecture, parameter count, dtype, context length, chat template and special tokens."""
    from sftlab.models.info import model_info

    data = model_info(model, trust_remote_code=trust_remote_code)
    if as_json:
        print_json(data)
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        table.add_row(f"[bold]{key}[/bold]", str(value))
    out.print(table)


def generate(
    model: str = typer.Argument(..., help="Model or run folder."),
    prompt: str = typer.Argument(..., help="User message."),
    system: str = typer.Option(None, help="System prompt."),
    max_new_tokens: int = typer.Option(128, help="Longest answer in tokens."),
    temperature: float = typer.Option(0.0, help="0 = greedy."),
    seed: int = typer.Option(0, help="Sampling seed."),
) -> None:
    """Answer PROMPT with the model's chat template applied, streaming the tokens."""
    from sftlab.models import load_model, load_tokenizer, resolve_model
    from sftlab.models.generate import check_generation_args, stream_reply

    check_generation_args(max_new_tokens=max_new_tokens, temperature=temperature)
    resolved = resolve_model(model)
    tokenizer = load_tokenizer(resolved)
    lm = load_model(resolved)
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    for piece in stream_reply(
        lm, tokenizer, messages, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed
    ):
        out.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
    out.print()
