"""Errors that reach the user as one clear line, never as a traceback.

Library code raises these for anything the user can fix (bad input, bad recipe,
missing model). The CLI prints ``error: <message>`` and exits with ``exit_code``;
any other exception is a bug in sftlab and keeps its traceback.
"""

from __future__ import annotations


class SftlabError(Exception):
    """A problem the user can fix; ``str(err)`` says what and how."""

    exit_code = 1


class RecipeError(SftlabError):
    """The recipe (or an override) is invalid. Collects every problem at once."""

    exit_code = 2

    def __init__(self, problems: list[str], source: str = "recipe"):
        self.problems = problems
        self.source = source
        head = f"{source}: {len(problems)} problem{'s' if len(problems) != 1 else ''}"
        if len(problems) > 1:
            message = head + "\n" + "\n".join(f"  - {p}" for p in problems)
        elif problems[0].startswith(source):  # it names the file (and line) already
            message = problems[0]
        else:
            message = f"{source}: {problems[0]}"
        super().__init__(message)


class DataError(SftlabError):
    """A data file or record is malformed; the message names file and line/row."""


class ModelError(SftlabError):
    """A model reference cannot be resolved or loaded."""


class MissingDependencyError(SftlabError):
    """An optional dependency is needed for the requested feature."""

    def __init__(self, package: str, feature: str, install: str | None = None):
        hint = install or f"pip install {package}"
        super().__init__(f"{feature} needs the optional package '{package}'; install it with: {hint}")
