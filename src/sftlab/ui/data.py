"""The curated records of a run for review: kept and rejected, counts, search and filters, decisions.

Reads ``<run>/curation/kept.jsonl`` and ``rejects.jsonl`` (``{"step", "reason",
"detail", "record"}``) without ever writing them. Decisions go to
``<run>/review.jsonl`` — outside ``curation/``, because every curation run
replaces that folder whole — one JSON line per decision, appended with a single
``write`` under a lock and flushed to disk, so a line is either there whole or not at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sftlab.curate.steps.review import DECISIONS, read_decisions
from sftlab.errors import DataError

REVIEW_FILE = "review.jsonl"
FILTERS = ("status", "step", "reason", "source", "task")
RANGES = ("min_words", "max_words", "min_score", "max_score")
SORTS = ("", "words", "-words", "score", "-score")
_LOCK = threading.Lock()
_CACHE: dict[Path, tuple[tuple, list[Item]]] = {}


@dataclass
class Item:
    """One record as the review sees it."""

    id: str
    status: str  # kept | rejected
    step: str
    reason: str
    detail: str
    record: dict[str, Any]
    text: str  # lower-cased, for search
    words: int  # whitespace words of every turn, as the length step counts by default

    @property
    def scores(self) -> dict[str, float]:
        scores = ((self.record.get("meta") or {}).get("extra") or {}).get("scores") or {}
        return (
            {k: v for k, v in scores.items() if isinstance(v, (int, float))}
            if isinstance(scores, dict)
            else {}
        )

    def get(self, key: str) -> str:
        if key in ("source", "task"):
            return str((self.record.get("meta") or {}).get(key) or "")
        return str(getattr(self, key))

    @property
    def turns(self) -> list[dict[str, Any]]:
        if self.record.get("kind") == "text":
            return [{"role": "text", "content": self.record.get("text", "")}]
        system = [{"role": "system", "content": self.record["system"]}] if self.record.get("system") else []
        return system + list(self.record.get("turns") or [])

    @property
    def answer(self) -> str:
        if self.record.get("kind") == "text":
            return self.record.get("text", "")
        answers = [
            t.get("content", "") for t in self.record.get("turns") or [] if t.get("role") == "assistant"
        ]
        return answers[-1] if answers else ""

    @property
    def prompt(self) -> str:
        users = [t.get("content", "") for t in self.record.get("turns") or [] if t.get("role") == "user"]
        return users[0] if users else self.answer


def load_items(run: Path) -> list[Item]:
    """Rejected then kept records of the run's curation (re-read only when the files change)."""
    folder = run / "curation"
    # kept records: kept.jsonl, or the shards of curation.output.shard_records (sftlab.curate.shards)
    files = [folder / "rejects.jsonl", folder / "kept.jsonl", *sorted((folder / "kept").glob("part-*.jsonl"))]
    key = tuple((f.stat().st_mtime_ns, f.stat().st_size) if f.is_file() else None for f in files)
    cached = _CACHE.get(folder)
    if cached and cached[0] == key:
        return cached[1]
    items = list(_read(files[0], rejected=True)) + [i for f in files[1:] for i in _read(f, rejected=False)]
    _CACHE[folder] = (key, items)
    return items


def _read(path: Path, *, rejected: bool):
    if not path.is_file():
        return
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            try:
                row = json.loads(line)
            except ValueError:
                continue
            record = row.get("record", {}) if rejected else row
            if not isinstance(record, dict):
                continue
            meta = record.get("meta") or {}
            yield Item(
                id=str(meta.get("id") or f"{path.stem}-line-{number}"),
                status="rejected" if rejected else "kept",
                step=str(row.get("step") or "") if rejected else "",
                reason=str(row.get("reason") or "") if rejected else "",
                detail=str(row.get("detail") or "") if rejected else "",
                record=record,
                text=json.dumps(record, ensure_ascii=False).lower(),
                words=sum(len(str(t.get("content") or "").split()) for t in _turns(record)),
            )


def _turns(record: dict[str, Any]) -> list[dict[str, Any]]:
    if record.get("kind") == "text":
        return [{"content": record.get("text", "")}]
    turns = [t for t in record.get("turns") or [] if isinstance(t, dict)]
    return ([{"content": record["system"]}] if record.get("system") else []) + turns


def select(items: list[Item], query: str = "", **filters: str) -> list[Item]:
    """Items matching every non-empty filter and containing every word of ``query`` (case-insensitive)."""
    words = query.lower().split()
    chosen = [(k, v) for k, v in filters.items() if v]
    return [it for it in items if all(it.get(k) == v for k, v in chosen) and all(w in it.text for w in words)]


class BadQuery(ValueError):
    """A filter value that is not what it should be (answered with 400)."""


def choose(items: list[Item], params, decided: dict | None = None) -> tuple[list[Item], dict[str, str]]:
    """The items a page's query selects, in its order, and the query's non-empty parameters.

    ``q`` (every word), the exact ``FILTERS``, word-count and score ranges (``score`` names the
    score in ``meta.extra.scores``; records without it fail a score range), ``review`` (``none``:
    not decided yet, ``any``, or a decision; ``decided`` holds the decisions), ``sort``.
    """
    query = {k: str(params.get(k, "")).strip() for k in ("q", *FILTERS, *RANGES, "score", "review", "sort")}
    query = {k: v for k, v in query.items() if v}
    bounds = {}
    for key in RANGES:
        if key in query:
            try:
                bounds[key] = float(query[key])
            except ValueError:
                raise BadQuery(f"{key} {query[key]!r}: a number") from None
    if query.get("sort", "") not in SORTS:
        raise BadQuery(f"sort {query['sort']!r}: one of {', '.join(s for s in SORTS if s)}")
    if query.get("review", "none") not in ("none", "any", *DECISIONS):
        raise BadQuery(f"review {query['review']!r}: none, any, {', '.join(DECISIONS)}")
    name = query.get("score", "")
    if ("min_score" in bounds or "max_score" in bounds or "score" in query.get("sort", "")) and not name:
        raise BadQuery("a score range or sort needs score=NAME (a key of meta.extra.scores)")
    chosen = select(items, query.get("q", ""), **{k: query.get(k, "") for k in FILTERS})
    chosen = [it for it in chosen if _in_range(it.words, bounds.get("min_words"), bounds.get("max_words"))]
    if name and ("min_score" in bounds or "max_score" in bounds):
        chosen = [
            it for it in chosen
            if name in it.scores and _in_range(it.scores[name], bounds.get("min_score"), bounds.get("max_score"))
        ]  # fmt: skip
    review, decided = query.get("review"), decided or {}
    if review:
        chosen = [
            it for it in chosen
            if (it.id in decided) == (review != "none")
            and review in ("none", "any", decided.get(it.id, {}).get("decision"))
        ]  # fmt: skip
    sort = query.get("sort", "")
    if sort:
        key = (lambda it: it.words) if "words" in sort else (lambda it: it.scores.get(name, float("inf")))
        chosen = sorted(chosen, key=key, reverse=sort.startswith("-"))
    return chosen, query


def _in_range(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def related(item: Item, items: list[Item], limit: int = 6) -> list[tuple[str, Item]]:
    """Records to see next to ``item``: the ones its rejection names ("duplicate of X", "cosine 0.99 with X"),
    the ones whose rejection names it (its duplicates), and the ones with the same prompt (a conflict group)."""
    by_id = {it.id: it for it in items}
    found: dict[str, tuple[str, Item]] = {}
    for token in re.findall(r"[\w.:/-]+", item.detail):
        if token in by_id and token != item.id:
            found.setdefault(token, ("named in its rejection", by_id[token]))
    prompt = item.prompt.strip().lower()
    for other in items:
        if len(found) >= limit:
            break
        if other.id == item.id or other.id in found:
            continue
        if item.id in re.findall(r"[\w.:/-]+", other.detail):
            found[other.id] = (f"{other.reason} of this one", other)
        elif prompt and other.prompt.strip().lower() == prompt:
            found[other.id] = ("same prompt", other)
    return list(found.values())[:limit]


def counts(items: list[Item]) -> dict[str, Counter]:
    """Counts by status, step and reason (``step: reason``), source and task."""
    out: dict[str, Counter] = {k: Counter() for k in ("status", "reason", "source", "task")}
    for it in items:
        out["status"][it.status] += 1
        if it.reason:
            out["reason"][(it.step, it.reason)] += 1
        out["source"][it.get("source") or "(none)"] += 1
        out["task"][it.get("task") or "(none)"] += 1
    return out


def decisions(run: Path) -> dict[str, dict[str, Any]]:
    """The last decision per record id in the run's review file (none yet: empty)."""
    path = run / REVIEW_FILE
    if not path.is_file():
        return {}
    try:
        return read_decisions(path)
    except DataError:  # a hand-edited line: show what can be read; the review step names the bad line
        found = {}
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                row = json.loads(line)
                if isinstance(row, dict) and row.get("decision") in DECISIONS and row.get("id") is not None:
                    found[str(row["id"])] = row
        return found


class BadDecision(ValueError):
    """A decision the client sent that cannot be recorded (answered with 400)."""


def append_decision(
    run: Path, record_id: str, decision: str, *, who: str, why: str = "", answer=None
) -> dict:
    """Append one decision line to ``<run>/review.jsonl``; returns the line written."""
    if decision not in DECISIONS:
        raise BadDecision(f"decision {decision!r}: one of {', '.join(DECISIONS)}")
    if not any(it.id == record_id for it in load_items(run)):
        raise BadDecision(f"id {record_id!r}: no such record in this run's curation")
    if decision == "edit" and not isinstance(answer, str):
        raise BadDecision("an edit needs the new answer")
    row: dict[str, Any] = {"id": record_id, "decision": decision}
    if decision == "edit":
        row["answer"] = answer
    row.update(who=who, when=datetime.now(UTC).isoformat(timespec="seconds"), why=why or "")
    line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
    with _LOCK:
        fd = os.open(run / REVIEW_FILE, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # a hand-edited last line without its newline stays a line of its own
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
    return row
