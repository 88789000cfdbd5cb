"""A source's ``substitute:`` block: fill ``{{name}}``-style variables in every text of its records.

LLaMA-Factory's ``identity.json`` ships answers such as "I am {{name}}, an AI
assistant developed by {{author}}" for users to fill with their own model's
name. A variable without a value stays as written, so the preview can point at
it instead of a silent empty string being trained.

>>> from sftlab.data.record import Conversation, Turn
>>> fill = substituter({"name": "Ledger", "author": "Acme"})
>>> rec = Conversation([Turn("user", "Who are you?"), Turn("assistant", "I am {{name}} by {{ author }}; {{model}}.")])
>>> fill(rec); rec.turns[1].content
'I am Ledger by Acme; {{model}}.'
>>> variables("{{ name }} and {{version}}")
['name', 'version']
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sftlab.data.record import Conversation, Record

#: ``{{name}}`` or ``{{ name }}``: an identifier between double braces, spaces allowed inside.
VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def variables(text: str) -> list[str]:
    """Names of the ``{{…}}`` variables in ``text``, in order (for warnings about unfilled ones)."""
    return VARIABLE.findall(text)


def substituter(values: dict[str, str]) -> Callable[[Record], None]:
    """A function that fills ``values`` into a record in place: system, contents, reasoning, plain text.

    Tool definitions and call arguments are structured data, not prose, and are
    left alone. Alpaca's remembered ``input`` (``meta.source_shape``) is filled
    too, so a record still writes back with its instruction/input split.
    """

    def fill_text(text: str) -> str:
        if "{{" not in text:
            return text
        return VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), text)

    def fill(record: Record) -> None:
        if not isinstance(record, Conversation):
            record.text = fill_text(record.text)
            return
        if record.system is not None:
            record.system = fill_text(record.system)
        for turn in record.turns:
            turn.content = fill_text(turn.content)
            if turn.reasoning is not None:
                turn.reasoning = fill_text(turn.reasoning)
        alpaca = record.meta.source_shape.get("alpaca")
        if alpaca and alpaca.get("input"):
            alpaca["input"] = fill_text(alpaca["input"])

    return fill
