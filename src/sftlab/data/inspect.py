"""``sftlab data inspect``: what is in a data file, before anyone trains on it.

Streams the file once and keeps only counters, one length per record and the
first three records, so it works on files larger than memory.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from sftlab.data.io import read_records
from sftlab.data.record import Conversation, Record
from sftlab.utils.progress import track


def percentiles(values: list[int]) -> dict[str, int]:
    """p50/p90/p99/max by nearest rank.

    >>> percentiles(list(range(1, 101)))
    {'p50': 50, 'p90': 90, 'p99': 99, 'max': 100}
    """
    if not values:
        return {"p50": 0, "p90": 0, "p99": 0, "max": 0}
    v = sorted(values)
    pick = lambda q: v[max(0, min(len(v) - 1, -(-len(v) * q // 100) - 1))]  # noqa: E731
    return {"p50": pick(50), "p90": pick(90), "p99": pick(99), "max": v[-1]}


def _token_count(tokenizer: Any, record: Record) -> int:
    if isinstance(record, Conversation) and getattr(tokenizer, "chat_template", None):
        from sftlab.data.formats import messages

        msgs = messages.dump(record)[0]["messages"]
        try:
            ids = tokenizer.apply_chat_template(msgs, tokenize=True, tools=record.tools)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return len(ids)
        except Exception:  # a template that rejects tool messages etc.: fall back to plain text
            pass
    return len(tokenizer(record.all_text(), add_special_tokens=False)["input_ids"])


def inspect_file(
    path: str | Path,
    *,
    format: str = "auto",
    mapping: dict[str, Any] | None = None,
    tokenizer: Any = None,
    samples: int = 3,
    on_error: str = "skip",
) -> dict[str, Any]:
    """Summary of a data file: format, counts, histograms, length percentiles, samples."""
    stream = read_records(path, format=format, mapping=mapping, on_error=on_error)
    turns_hist: Counter = Counter()
    roles: Counter = Counter()
    kinds: Counter = Counter()
    chars: list[int] = []
    tokens: list[int] = []
    with_tools = with_calls = with_reasoning = with_system = 0
    sample_rows: list[dict[str, Any]] = []
    for record in track(stream, f"inspect {Path(str(path)).name}", total=None):
        kinds[record.kind] += 1
        chars.append(len(record.all_text()))
        if tokenizer is not None:
            tokens.append(_token_count(tokenizer, record))
        if len(sample_rows) < samples:
            sample_rows.append(record.to_dict())
        if isinstance(record, Conversation):
            turns_hist[len(record.turns)] += 1
            for t in record.turns:
                roles[t.role] += 1
            with_system += record.system is not None
            with_tools += bool(record.tools)
            with_calls += any(t.tool_calls for t in record.turns)
            with_reasoning += any(t.reasoning for t in record.turns)
    stats = stream.stats
    out: dict[str, Any] = {
        "path": str(path),
        "format": stats.format,
        "records": stats.kept,
        "read": stats.to_dict(),
        "kinds": dict(kinds),
        "turns_histogram": {str(k): v for k, v in sorted(turns_hist.items())},
        "roles": dict(roles),
        "with_system": with_system,
        "with_tools": with_tools,
        "with_tool_calls": with_calls,
        "with_reasoning": with_reasoning,
        "chars": percentiles(chars),
    }
    if tokenizer is not None:
        out["tokens"] = percentiles(tokens)
    out["samples"] = sample_rows
    return out
