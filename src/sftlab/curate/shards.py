"""Sharded curation outputs: ``kept/part-00000.jsonl`` … and ``kept/index.json``.

With ``curation.output.shard_records: N`` (N > 0) the kept records are written
N to a file instead of one ``kept.jsonl``, so a later stage or another machine
can take them a shard at a time. The index lists every shard with its record
count and sha256; readers go through the index and check both, so a shard that
is missing, cut short or changed is an error naming it, never data::

    kept/index.json  {"format": "sftlab", "records": 5, "shard_records": 2,
                      "shards": [{"name": "part-00000.jsonl", "records": 2, "sha256": "…"}, …]}

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> with ShardedKeptWriter(d / "kept", 2) as w:
...     for i in range(5):
...         w.write('{"n": %d}\\n' % i)
>>> [s["records"] for s in read_index(d)["shards"]]
[2, 2, 1]
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from sftlab.data.io import load_jsonl_records
from sftlab.data.record import Record, record_from_dict
from sftlab.errors import DataError

KEPT_DIR = "kept"
INDEX = "index.json"


class ShardedKeptWriter:
    """A file-like sink for ``kept.jsonl`` rows that starts a new part every ``shard_records`` rows."""

    def __init__(self, folder: Path, shard_records: int):
        self.folder, self.shard_records = Path(folder), shard_records
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shards: list[dict[str, Any]] = []
        self.fh: IO[bytes] | None = None
        self.sha = hashlib.sha256()
        self.count = 0

    def write(self, row: str) -> None:
        if self.fh is None or self.count == self.shard_records:
            self._finish_part()
            name = f"part-{len(self.shards):05d}.jsonl"
            self.fh = open(self.folder / name, "wb")  # noqa: SIM115 - closed by _finish_part
            self.shards.append({"name": name, "records": 0, "sha256": ""})
        data = row.encode("utf-8")
        self.fh.write(data)
        self.sha.update(data)
        self.count += 1

    def _finish_part(self) -> None:
        if self.fh is None:
            return
        self.fh.close()
        self.shards[-1].update(records=self.count, sha256=self.sha.hexdigest())
        self.fh, self.sha, self.count = None, hashlib.sha256(), 0

    def close(self) -> None:
        """Close the last part and write the index (the folder is published by the runner's rename)."""
        self._finish_part()
        index = {
            "format": "sftlab",
            "records": sum(s["records"] for s in self.shards),
            "shard_records": self.shard_records,
            "shards": self.shards,
        }
        (self.folder / INDEX).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")

    def __enter__(self) -> ShardedKeptWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def kept_writer(stage: Path, shard_records: int) -> IO[str] | ShardedKeptWriter:
    """``kept.jsonl`` (``shard_records`` 0) or the sharded ``kept/`` folder, as a context manager with ``write``."""
    if shard_records <= 0:
        return open(stage / "kept.jsonl", "w", encoding="utf-8")
    return ShardedKeptWriter(stage / KEPT_DIR, shard_records)


def has_kept(curation_dir: Path) -> bool:
    """A curation folder holds kept records (one file, or an index of shards)."""
    return (curation_dir / "kept.jsonl").is_file() or (curation_dir / KEPT_DIR / INDEX).is_file()


def read_index(curation_dir: Path) -> dict[str, Any]:
    path = Path(curation_dir) / KEPT_DIR / INDEX
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read the index of the kept shards ({err})") from None


def iter_kept(curation_dir: Path) -> Iterator[Record]:
    """The kept records of a curation folder, through ``kept/index.json`` when the output is sharded.

    Each shard is checked against the index (record count and sha256) as it is read.
    """
    curation_dir = Path(curation_dir)
    if not (curation_dir / KEPT_DIR / INDEX).is_file():
        yield from load_jsonl_records(curation_dir / "kept.jsonl")
        return
    for shard in read_index(curation_dir)["shards"]:
        path = curation_dir / KEPT_DIR / shard["name"]
        try:
            data = path.read_bytes()
        except OSError as err:
            raise DataError(
                f"{path}: a kept shard listed in {INDEX} cannot be read ({err.strerror})"
            ) from None
        lines = data.splitlines()
        if hashlib.sha256(data).hexdigest() != shard["sha256"] or len(lines) != shard["records"]:
            raise DataError(
                f"{path}: does not match {INDEX} ({len(lines)} records, index says {shard['records']}, "
                "or its sha256 differs); run the curation again"
            )
        for lineno, line in enumerate(lines, 1):
            try:
                yield record_from_dict(orjson.loads(line))
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(f"{path}:{lineno}: not a canonical sftlab record ({exc})") from None


def load_kept(curation_dir: Path) -> list[Record]:
    """All kept records of a curation folder (see :func:`iter_kept`)."""
    return list(iter_kept(curation_dir))
