"""Records parked on disk in arrival order, so a global step holds only what it computes from them.

A near-duplicate pass over a million records needs every signature before it can
decide anything, but not every record: they are written to an unnamed temporary
file as they stream past (one JSON line each, offsets kept in an 8-byte array),
read back by index for the few records the decision looks at (cluster members),
and streamed back in order to emit the decisions.
"""

from __future__ import annotations

import tempfile
from array import array
from collections.abc import Iterable, Iterator

import orjson

from sftlab.data.record import Record, record_from_dict


class RecordSpool:
    """Append-only on-disk sequence of records: ``len``, ``spool[i]`` and in-order iteration."""

    def __init__(self) -> None:
        self._fh = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 (closed by close() / __exit__)
        self._offsets = array("Q")
        self._end = 0

    def append(self, record: Record) -> None:
        line = orjson.dumps(record.to_dict()) + b"\n"
        self._fh.seek(self._end)
        self._fh.write(line)
        self._offsets.append(self._end)
        self._end += len(line)

    def tee(self, records: Iterable[Record]) -> Iterator[Record]:
        """Yield ``records`` while appending each one."""
        for record in records:
            self.append(record)
            yield record

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, i: int) -> Record:
        self._fh.seek(self._offsets[i])
        return record_from_dict(orjson.loads(self._fh.readline()))

    def __iter__(self) -> Iterator[Record]:
        self._fh.flush()
        self._fh.seek(0)
        pos = 0
        while pos < self._end:
            line = self._fh.readline()
            pos += len(line)
            here = self._fh.tell()
            yield record_from_dict(orjson.loads(line))
            self._fh.seek(here)  # a caller may have read other records by index in between

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> RecordSpool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
