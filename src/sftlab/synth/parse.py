"""Read what a teacher wrote: JSON in fences or cut off mid-way, numbered lists, yes/no.

Teachers wrap JSON in Markdown fences, add a sentence before it, or stop at
``max_tokens`` in the middle of a list. These parsers recover every complete
object and say nothing was found (``None`` / ``[]``) rather than guessing.

>>> parse_json_objects('Sure!\\n```json\\n[{"a": 1}, {"a": 2}, {"a":')
[{'a': 1}, {'a': 2}]
>>> parse_numbered_list("1. Write a poem.\\n2) Sort the list\\nTask 3: Name a colour")
['Write a poem.', 'Sort the list', 'Name a colour']
>>> parse_yes_no("Yes, it is."), parse_yes_no("no"), parse_yes_no("maybe")
(True, False, None)
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)(?:```|$)", re.DOTALL)
# A numbered item however the teacher marks it: "1. Task", "2) Task", "(3) Task", "Task 4: ...", "- 5. Task",
# "* 6) Task", "**7.** Task", "**8. Task**", "9 - Task", "10 – Task".
_ITEM = re.compile(
    r"^\s*(?:[-*•+]\s+)?(?:\*\*|__)?\s*(?:(?:task|instruction|question)\s*)?\(?(\d{1,3})\s*(?:[.):]|\s[-–—])"
    r"\s*(?:\*\*|__)?\s*(.+)$",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^(\s*)[-*•+]\s+(.+)$")
_EMPHASIS = re.compile(r"^(?:\*\*|__)(.+?)(?:\*\*|__)$")


def parse_json_objects(text: str) -> list[dict[str, Any]]:
    """Every complete JSON object in ``text``: a whole array, or objects salvaged one by one."""
    body = _unfence(text)
    start = min((i for i in (body.find("["), body.find("{")) if i >= 0), default=-1)
    if start < 0:
        return []
    try:
        value = json.loads(body[start:])
        if isinstance(value, dict):
            return [value]
        if isinstance(value, list):
            return [v for v in value if isinstance(v, dict)]
    except json.JSONDecodeError:
        pass
    # Partial or chatty output: decode each top-level object that is complete.
    decoder = json.JSONDecoder()
    out: list[dict[str, Any]] = []
    i = body.find("{", start)
    while i >= 0:
        try:
            value, end = decoder.raw_decode(body, i)
        except json.JSONDecodeError:
            i = body.find("{", i + 1)
            continue
        if isinstance(value, dict):
            out.append(value)
        i = body.find("{", end)
    return out


def _unfence(text: str) -> str:
    match = _FENCE.search(text)
    return match.group(1) if match else text


def parse_numbered_list(text: str) -> list[str]:
    """Items of the list a teacher wrote, stripped; other lines ignored.

    Numbered items in any of the usual styles are read; a bullet under a numbered item belongs to it and is
    not an item. Only when nothing is numbered are the outermost bullets ("- Task") the items.

    >>> parse_numbered_list("- 1. Write a poem.\\n  - about the sea\\n- **2.** Sort a list\\n3 - Name a bird")
    ['Write a poem.', 'Sort a list', 'Name a bird']
    """
    items = []
    for line in text.splitlines():
        match = _ITEM.match(line)
        if match and (item := _clean(match.group(2))):
            items.append(item)
    return items or _bullets(text)


def _bullets(text: str) -> list[str]:
    found = [(len(m.group(1).expandtabs(4)), m.group(2)) for m in map(_BULLET.match, text.splitlines()) if m]
    if not found:
        return []
    top = min(indent for indent, _ in found)
    return [item for indent, raw in found if indent == top and (item := _clean(raw))]


def _clean(item: str) -> str:
    """An item without the emphasis wrapped around all of it ("**Sort a list**" → "Sort a list")."""
    item = item.strip()
    match = _EMPHASIS.match(item)
    if match:
        return match.group(1).strip()
    for mark in ("**", "__"):  # "**1. Task**": the opening mark came before the number
        if item.endswith(mark) and item.count(mark) % 2:
            return item[: -len(mark)].strip()
    return item


def parse_yes_no(text: str) -> bool | None:
    """The verdict of a yes/no answer (first word decides), or ``None`` if it is neither."""
    words = re.findall(r"[a-zA-Z]+", text.lower())
    if not words:
        return None
    if words[0] in ("yes", "true", "correct", "agree", "agrees"):
        return True
    if words[0] in ("no", "false", "incorrect", "disagree", "disagrees"):
        return False
    return None
