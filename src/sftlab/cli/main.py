"""Entry point of the ``sftlab`` command.

User mistakes (:class:`SftlabError`) print one line and exit non-zero, never a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
import warnings

import typer

from sftlab import __version__
from sftlab.cli import (
    ablate_cmd,
    curate_cmd,
    data_cmd,
    docs_cmd,
    eval_cmd,
    model_cmd,
    preview_cmd,
    recipe_cmd,
    run_cmd,
    synth_cmd,
    train_cmd,
    ui_cmd,
    use_cmd,
)
from sftlab.errors import SftlabError

app = typer.Typer(
    name="sftlab",
    help="Supervised fine-tuning of LLMs: curate data, render, train, evaluate, serve — one recipe, one CLI.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(recipe_cmd.app, name="recipe")
app.add_typer(model_cmd.app, name="model")
app.add_typer(data_cmd.app, name="data")
data_cmd.app.command("synth")(synth_cmd.synth)
data_cmd.app.command("curate")(curate_cmd.curate)
data_cmd.app.command("preview")(preview_cmd.preview)
app.command("run")(run_cmd.run)
app.command("ablate")(ablate_cmd.ablate)
app.command("train")(train_cmd.train)
app.command("doctor")(train_cmd.doctor)
app.command("eval")(eval_cmd.eval_command)
app.command("generate")(model_cmd.generate)
app.command("chat")(use_cmd.chat)
app.command("export")(use_cmd.export)
app.command("serve")(use_cmd.serve)
app.command("estimate")(use_cmd.estimate)
app.command("docs")(docs_cmd.docs)
app.command("ui")(ui_cmd.ui)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sftlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """sftlab command line."""


def _quiet_libraries() -> None:
    """sftlab draws its own progress bars; the libraries' bars and info logs only add noise."""
    import logging

    for name in ("transformers", "datasets", "accelerate", "peft", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - transformers is a core dependency
        pass


def _filesystem_error(err: OSError) -> str | None:
    """A file-system failure the user can fix (permissions, disk full, read-only, missing, not a folder) as one line."""
    import errno

    fixable = {
        errno.EACCES,
        errno.EPERM,
        errno.ENOSPC,
        errno.EROFS,
        errno.EDQUOT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.ENAMETOOLONG,
        errno.EEXIST,
        errno.ENOENT,
    }
    if err.errno not in fixable:
        return None
    if err.filename is None:
        return str(err.strerror or err)
    return f"{err.filename}: {err.strerror or err}"


def _click_classes(name: str) -> tuple[type, ...]:
    """``name`` from click and from the copy of click typer bundles (``typer._click``), whichever exist."""
    import importlib

    found = []
    for module in ("click.exceptions", "typer._click.exceptions"):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _click_error(exc: Exception) -> int | None:
    """Usage errors as one line with the help hint (exit 2); ``None`` for anything that is not click's."""
    if isinstance(exc, _click_classes("NoArgsIsHelpError")):
        typer.echo(exc.ctx.get_help())
        return 2
    if isinstance(exc, _click_classes("UsageError")):
        ctx = getattr(exc, "ctx", None)
        path = ctx.command_path if ctx is not None else "sftlab"
        message = " ".join(exc.format_message().split())
        typer.echo(f"error: {message} (see '{path} --help')", err=True)
        return 2
    if isinstance(exc, _click_classes("ClickException")):
        typer.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
        return exc.exit_code
    if isinstance(exc, _click_classes("Abort")):
        typer.echo("aborted", err=True)
        return 1
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (used by the console script and tests)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if not sys.stderr.isatty():  # libraries' tqdm bars are carriage-return junk in a log file
        os.environ.setdefault("TQDM_DISABLE", "1")
    # peft reads a property transformers 5 deprecated; the warning is theirs, not the user's to act on.
    warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
    _quiet_libraries()
    try:
        # In non-standalone mode click returns typer.Exit's code instead of raising it.
        code = app(args=argv, prog_name="sftlab", standalone_mode=False)
        if isinstance(code, int) and not isinstance(code, bool):
            return code
    except SftlabError as err:
        typer.echo(f"error: {err}", err=True)
        return err.exit_code
    except OSError as err:
        message = _filesystem_error(err)
        if message is None:
            raise
        typer.echo(f"error: {message}", err=True)
        return 1
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except typer.Exit as exit_:
        return exit_.exit_code or 0
    except SystemExit as exit_:
        return int(exit_.code or 0)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        handled = _click_error(exc)
        if handled is None:
            raise
        return handled
    return 0


if __name__ == "__main__":
    sys.exit(main())
