"""A persistent cache of teacher responses, so an interrupted run resumes without paying twice.

Each response is committed the moment it arrives (SQLite in WAL mode), so a
crash or SIGKILL loses at most the requests that were still in flight. The key
is a hash of everything that determines the answer: model, messages, sampling
parameters and seed.

>>> import tempfile, os
>>> cache = RequestCache(os.path.join(tempfile.mkdtemp(), "cache.sqlite"))
>>> key = request_key("m", [{"role": "user", "content": "hi"}], {"temperature": 0.0}, seed=1)
>>> cache.get(key) is None
True
>>> cache.put(key, CachedResponse("hello", 3, 1))
>>> cache.get(key).text
'hello'
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sftlab.utils.hashing import fingerprint


@dataclass(frozen=True)
class CachedResponse:
    """The part of a teacher response we keep: its text and token usage."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


def request_key(model: str, messages: list[dict[str, Any]], params: dict[str, Any], seed: int | None) -> str:
    """The cache key of one chat request."""
    return fingerprint({"model": model, "messages": messages, "params": params, "seed": seed})


class RequestCache:
    """A thread-safe key → response store in one SQLite file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # One connection shared by the worker threads, serialised by the lock.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses ("
            "key TEXT PRIMARY KEY, text TEXT NOT NULL, prompt_tokens INTEGER, completion_tokens INTEGER)"
        )

    def get(self, key: str) -> CachedResponse | None:
        with self._lock:
            row = self._db.execute(
                "SELECT text, prompt_tokens, completion_tokens FROM responses WHERE key = ?", (key,)
            ).fetchone()
        return CachedResponse(row[0], row[1] or 0, row[2] or 0) if row else None

    def put(self, key: str, response: CachedResponse) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)",
                (key, response.text, response.prompt_tokens, response.completion_tokens),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
