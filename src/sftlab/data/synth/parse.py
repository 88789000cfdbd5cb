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
_ITEM = re.compile(r"^\s*(?:(?:task|instruction)\s*)?\(?\d{1,3}\s*[.):\-]\s*(.+)$", re.IGNORECASE)


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
    """Items of a numbered list (``1.``, ``2)``, ``Task 3:``), stripped; other lines ignored."""
    items = []
    for line in text.splitlines():
        match = _ITEM.match(line)
        if match and match.group(1).strip():
            items.append(match.group(1).strip())
    return items


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
