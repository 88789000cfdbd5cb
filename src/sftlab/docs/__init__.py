"""Reference documentation generated from the code, so it cannot go stale.

:func:`recipe_reference_markdown` walks the pydantic model
:class:`sftlab.recipe.schema.Recipe` (every key's dotted path, type, default and
meaning, taken from the attribute docstrings) and :func:`cli_reference_markdown`
walks the click command tree behind ``sftlab`` (usage line, help, options and
arguments). ``sftlab docs --out docs/`` writes both; ``tests/test_docs.py``
fails when the committed copies differ from freshly generated ones.

The output depends only on the code: no timestamps, paths, or terminal width.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sftlab.docs.cli_ref import cli_reference_markdown
from sftlab.docs.markdown import REGENERATE
from sftlab.docs.recipe_ref import recipe_reference_markdown, recipe_tables

__all__ = ["REGENERATE", "cli_reference_markdown", "recipe_reference_markdown", "recipe_tables", "write_docs"]


def write_docs(out_dir: str, cli_root: Any, *, check: bool = False) -> list[str]:
    """Write ``recipe.md`` and ``cli.md`` (for the click command ``cli_root``) into ``out_dir`` atomically.

    With ``check`` nothing is written; returns the names of the files that are
    missing or differ from freshly generated ones (empty when up to date).
    """
    from sftlab.utils.atomic import write_text

    wanted = {"recipe.md": recipe_reference_markdown(), "cli.md": cli_reference_markdown(cli_root)}
    stale = []
    for name, text in wanted.items():
        target = Path(out_dir) / name
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        stale.append(name)
        if not check:
            write_text(target, text)
    return stale
