"""Which format a row is in, from its keys (after column mapping).

>>> detect_format({"conversations": [{"from": "human", "value": "hi"}]})
'sharegpt'
>>> detect_format({"messages": [{"role": "user", "content": "hi"}]})
'messages'
>>> detect_format({"question": "?"}, where="qa.jsonl")
Traceback (most recent call last):
...
sftlab.errors.DataError: qa.jsonl: cannot detect the format from the keys ['question']; pass --from alpaca|sharegpt|messages|text|sftlab, or map columns (mapping: {prompt: question, response: ...})
"""

from __future__ import annotations

from typing import Any

from sftlab.errors import DataError


def _turn_style(turns: Any) -> str | None:
    """``sharegpt`` for ``from``/``value`` turns, ``messages`` for ``role``/``content``."""
    if isinstance(turns, str):  # JSON in a CSV/Parquet cell
        import orjson

        try:
            turns = orjson.loads(turns)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(turns, list):
        return None
    for t in turns:
        if isinstance(t, dict):
            if "from" in t or "value" in t:
                return "sharegpt"
            if "role" in t or "content" in t:
                return "messages"
    return None


def detect_format(row: dict[str, Any], *, where: str = "input") -> str:
    """Name of the format of ``row``; a :class:`DataError` lists the keys seen when nothing fits."""
    keys = set(row)
    if "kind" in keys and ("turns" in keys or "text" in keys):
        return "sftlab"
    for key in ("conversations", "messages"):
        if key in keys:
            style = _turn_style(row[key])
            if style:
                return style
            # custom tags (role_tag/content_tag): conversations is ShareGPT's column, messages OpenAI's
            return "sharegpt" if key == "conversations" else "messages"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    if "text" in keys:
        return "text"
    raise DataError(
        f"{where}: cannot detect the format from the keys {sorted(keys)}; pass --from "
        "alpaca|sharegpt|messages|text|sftlab, or map columns (mapping: {prompt: question, response: ...})"
    )
