"""``review``: a person's decisions from ``sftlab ui`` applied as a curation step.

The review file holds one JSON line per decision (append-only, written by the
UI); the last line for an id wins::

    {"id": "train-3", "decision": "drop", "who": "ana", "when": "...", "why": "wrong label"}
    {"id": "train-7", "decision": "edit", "answer": "Paris.", "who": "ana", "when": "...", "why": ""}

Decisions override the rules:

* ``drop`` → rejected with reason ``review`` (the ``why`` as detail);
* ``edit`` → the last assistant answer (a text record's text) replaced, counted as edited;
* ``keep`` and ``edit`` mark the record (``meta.extra.sftlab_review``) so that every *later*
  step passes it: what a later rule would have removed is noted as a flag
  (``step:reason``) instead. Put ``review`` first so that it sees every record.

Decisions for ids no record carries are counted in the step's details
(``unmatched``), never silently ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sftlab.curate.steps.base import Decision, RecordStep
from sftlab.data.record import Conversation, Record
from sftlab.errors import DataError

DECISIONS = ("keep", "drop", "edit")
REVIEW_MARK = "sftlab_review"
"""Key in ``meta.extra`` that marks a record a person kept or edited (later steps pass it)."""


def read_decisions(path: str | Path) -> dict[str, dict[str, Any]]:
    """The last decision per record id in a review file; a bad line is one clear error naming file:line.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "review.jsonl")
    >>> _ = open(p, "w").write('{"id": "a", "decision": "drop"}\\n{"id": "a", "decision": "keep"}\\n')
    >>> read_decisions(p)["a"]["decision"]
    'keep'
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"curation step review: path {path}: no such file (write it with 'sftlab ui')")
    decisions: dict[str, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise DataError(f"{path}:{number}: not a JSON line") from None
            problem = _problem(row)
            if problem:
                raise DataError(f"{path}:{number}: {problem}")
            decisions[str(row["id"])] = row
    return decisions


def _problem(row: Any) -> str | None:
    if not isinstance(row, dict):
        return "a decision is a JSON object"
    if not isinstance(row.get("id"), (str, int)) or row.get("id") == "":
        return "key 'id': missing (the record's meta.id)"
    if row.get("decision") not in DECISIONS:
        return f"key 'decision': {row.get('decision')!r} is not one of {', '.join(DECISIONS)}"
    if row["decision"] == "edit" and not isinstance(row.get("answer"), str):
        return "key 'answer': an edit needs the new answer as a string"
    return None


def replace_answer(record: Record, answer: str) -> None:
    """Put ``answer`` in place of the last assistant turn (or a text record's text)."""
    if not isinstance(record, Conversation):
        record.text = answer
        return
    for turn in reversed(record.turns):
        if turn.role == "assistant":
            turn.content = answer
            return
    raise DataError(f"review: record {record.meta.id} has no assistant answer to edit")


class ReviewStep(RecordStep):
    """Applies the decisions of a review file (see the module docstring)."""

    def __init__(self, config):
        super().__init__(config.action)
        self.path = Path(config.path)
        self.decisions = read_decisions(self.path)
        self.applied = {name: 0 for name in DECISIONS}

    def process(self, record: Record) -> Decision:
        row = self.decisions.get(str(record.meta.id)) if record.meta.id is not None else None
        if row is None:
            return Decision(record)
        choice = row["decision"]
        self.applied[choice] += 1
        self.details.update(
            path=str(self.path),
            decisions=len(self.decisions),
            applied=dict(self.applied),
            unmatched=len(self.decisions) - sum(self.applied.values()),
        )
        if choice == "drop":
            return Decision(record, "review", row.get("why") or None)
        record.meta.extra[REVIEW_MARK] = choice
        if choice == "edit":
            replace_answer(record, row["answer"])
            record.meta.provenance.setdefault("curation_edits", []).append("review")
            return Decision(record, edited=True)
        return Decision(record)

    def apply(self, records):
        self.details.update(path=str(self.path), decisions=len(self.decisions), unmatched=len(self.decisions))
        yield from super().apply(records)
