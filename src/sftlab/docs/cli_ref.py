"""The CLI reference (``docs/cli.md``): every command of a click tree, its usage, help and parameters.

It takes the root command as an argument, so this module never imports the CLI
(which imports ``sftlab docs`` and would make a cycle).
"""

from __future__ import annotations

import enum
import inspect
import json
import typing
from collections.abc import Iterator
from typing import Any, Literal

from sftlab.docs.markdown import HEADER, code, join_text, md_text, slug, table, union_args, unwrap_annotated


def _is_group(cmd: Any) -> bool:
    return hasattr(cmd, "list_commands") and hasattr(cmd, "get_command")


def _is_argument(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "argument"


def _subcommands(cmd: Any, ctx: Any) -> list[tuple[str, Any]]:
    if not _is_group(cmd):
        return []
    subs = [(name, cmd.get_command(ctx, name)) for name in cmd.list_commands(ctx)]
    return [(name, sub) for name, sub in subs if sub is not None and not getattr(sub, "hidden", False)]


def _iter_commands(cmd: Any, ctx: Any) -> Iterator[tuple[Any, Any]]:
    """(command, context) for ``cmd`` and every visible subcommand, depth-first in listing order."""
    yield cmd, ctx
    for name, sub in _subcommands(cmd, ctx):
        yield from _iter_commands(sub, sub.context_class(sub, info_name=name, parent=ctx))


def _first_paragraph(text: str | None) -> str:
    if not text:
        return ""
    text = inspect.cleandoc(text).replace("\b\n", "")
    return md_text(text.split("\n\n")[0])


def _usage(cmd: Any, ctx: Any) -> str:
    return " ".join([ctx.command_path, *cmd.collect_usage_pieces(ctx)])


def _param_default(param: Any) -> str:
    default = param.default
    if getattr(param, "is_flag", False):
        return code("true") if default is True else ""
    if default is None or callable(default) or default in ((), []):
        return ""
    if isinstance(default, bool):
        return code(json.dumps(default))
    return code(str(default))


_CLI_TYPES = {str: "text", int: "integer", float: "number", bool: "boolean"}


def _cli_type_name(tp: Any) -> str:
    tp = unwrap_annotated(tp)
    args = union_args(tp)
    if args is not None:
        return " | ".join(_cli_type_name(a) for a in args if a is not type(None))
    if typing.get_origin(tp) in (list, tuple, set):
        inner = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return _cli_type_name(inner[0]) if inner else "text"
    if typing.get_origin(tp) is Literal:
        return "|".join(str(a) for a in typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "|".join(str(m.value) for m in tp)
    if tp in _CLI_TYPES:
        return _CLI_TYPES[tp]
    return getattr(tp, "__name__", str(tp)).lower()


def _param_type(param: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        name = _cli_type_name(descriptor.annotation)
    else:  # a plain click parameter
        choices = getattr(param.type, "choices", None)
        name = "|".join(str(c) for c in choices) if choices else param.type.name.lower()
    if _is_argument(param) and param.nargs == -1:
        name += ", any number"
    elif getattr(param, "multiple", False):
        name += ", repeatable"
    return name


def _param_rows(cmd: Any, ctx: Any) -> list[list[str]]:
    params = [p for p in cmd.get_params(ctx) if not getattr(p, "hidden", False)]
    params = [p for p in params if "--help" not in getattr(p, "opts", ())]
    params.sort(key=lambda p: not _is_argument(p))  # arguments first; stable otherwise
    rows = []
    for param in params:
        if _is_argument(param):
            shown = getattr(param, "display_name_raw", None) or param.metavar or param.name.upper()
            name, kind = f"`{shown}`", "argument"
        else:
            on = ", ".join(param.opts)
            name = f"`{on} / {', '.join(param.secondary_opts)}`" if param.secondary_opts else f"`{on}`"
            kind = "option"
        help_text = md_text(getattr(param, "help", None))
        if param.required:
            help_text = join_text("**Required.**", help_text)
        rows.append([name, kind, _param_type(param), _param_default(param), help_text])
    return rows


def cli_reference_markdown(root: Any) -> str:
    """The CLI reference (``docs/cli.md``) of the click command ``root`` as Markdown."""
    commands = list(_iter_commands(root, root.context_class(root, info_name="sftlab")))
    lines = [
        HEADER,
        "",
        "# CLI reference",
        "",
        "Every `sftlab` command with its usage, what it does, and its arguments and options. "
        "`sftlab COMMAND --help` prints the same on the terminal.",
        "",
        "## Contents",
        "",
    ]
    for _, ctx in commands[1:]:
        indent = "  " * (ctx.command_path.count(" ") - 1)
        lines.append(f"{indent}- [`{ctx.command_path}`](#{slug(ctx.command_path)})")
    lines.append("")
    for cmd, ctx in commands:
        level = "#" * min(2 + max(ctx.command_path.count(" ") - 1, 0), 4)
        lines += [f"{level} `{ctx.command_path}`", "", "```text", _usage(cmd, ctx), "```", ""]
        summary = _first_paragraph(cmd.help)
        if summary:
            lines += [summary, ""]
        subs = _subcommands(cmd, ctx)
        if subs:
            rows = [
                [f"[`{name}`](#{slug(f'{ctx.command_path} {name}')})", _first_paragraph(sub.help)]
                for name, sub in subs
            ]
            lines += [*table(["Command", "Description"], rows), ""]
        rows = _param_rows(cmd, ctx)
        if rows:
            lines += [*table(["Name", "Kind", "Type", "Default", "Description"], rows), ""]
    return "\n".join(lines).rstrip() + "\n"
