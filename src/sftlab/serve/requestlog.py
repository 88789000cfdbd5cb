"""One JSONL line per completed request, flushed at once, so a crash loses nothing already answered.

Lines carry a hash of the request body (canonical JSON: key order and spacing do
not matter), so a client resuming an interrupted job can prove it never sent the
same request twice.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any


def body_hash(payload: Any) -> str:
    """SHA-256 of ``payload`` as canonical JSON.

    >>> body_hash({"b": 1, "a": [1, 2]}) == body_hash({"a": [1, 2], "b": 1})
    True
    """
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class RequestLog:
    """Append-only JSONL; safe to call from several threads and from the event loop."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the server

    def write(self, **fields: Any) -> None:
        row = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields}
        line = json.dumps(row, ensure_ascii=False) + "\n"
        with self._lock:
            self._fh.write(line)
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._fh.close()
