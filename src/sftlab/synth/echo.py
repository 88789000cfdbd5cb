"""Teacher output that repeats its own prompt template instead of doing the task.

A teacher that cannot fill a slot often copies it: a self-instruct instance
``<an input of that class>`` → ``<the class label>``, a doc-QA pair
``<question>`` → ``<answer>``, an evolved task ending "Reply with the new task
only". Judged by similarity such a record can even pass ("agreement 1.0"), so it
is rejected for what it is (``template_echo``), against the template that
asked for it — built-in or the recipe's own.

>>> from sftlab.synth.templates import Template
>>> t = Template("demo", 'Reply with the new task only, with no heading.\\n{"q": "<question>"}\\n\\n$prompt', "x")
>>> template_echo("<question>", t)
'<question>'
>>> template_echo("Sort the list. Reply with the new task only", t)
'reply with the new task only'
>>> template_echo("Sort the list of prompts by length.", t) is None
True
"""

from __future__ import annotations

import re
from functools import lru_cache

from sftlab.synth.templates import Template

MIN_CLAUSE_WORDS = 4
"""A template clause this long or longer, found whole in an output, is copied instruction text."""

_SLOT = re.compile(r"<[^<>\n]{1,80}>")
_VARIABLE = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")
_CLAUSE_END = re.compile(r"[.,;:!?()\"|\n]+|\s[-–—]\s")
_WRAPPED = re.compile(r"(?<!\n)\n(?!\n)")  # a line wrapped inside a sentence
_SPACE = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text.lower()).strip()


@lru_cache(maxsize=64)
def _parts(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The template's slots (``<question>``) and its instruction clauses, variables removed."""
    slots = tuple(sorted({m.group(0) for m in _SLOT.finditer(text)}))
    prose = _WRAPPED.sub(" ", _VARIABLE.sub(" | ", _SLOT.sub(" | ", text)))
    clauses = {_norm(c) for c in _CLAUSE_END.split(prose)}
    return slots, tuple(sorted(c for c in clauses if len(c.split()) >= MIN_CLAUSE_WORDS))


def template_echo(output: str, template: Template) -> str | None:
    """The piece of ``template`` that ``output`` repeats (a slot, an unfilled ``$variable`` or a whole
    instruction clause), or ``None``."""
    slots, clauses = _parts(template.text)
    lowered = output.lower()
    for slot in slots:
        if slot.lower() in lowered:
            return slot
    variable = _VARIABLE.search(output)
    if variable and variable.group(0) in template.text:
        return variable.group(0)
    flat = _norm(output)
    return next((clause for clause in clauses if clause in flat), None)


def first_echo(outputs: list[str], template: Template) -> str | None:
    """The first echo found in any of ``outputs`` (the fields of one generated item)."""
    return next((hit for text in outputs if (hit := template_echo(text, template))), None)
