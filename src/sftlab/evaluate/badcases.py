"""Bad cases: every wrong answer with its prompt, the expected and the produced answer, for reading."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sftlab.evaluate.metrics import normalize
from sftlab.evaluate.samples import EvalSample
from sftlab.utils.atomic import write_jsonl


def is_correct(produced: str, expected: str) -> bool:
    """An answer is right when it equals the expected one after :func:`normalize`."""
    return normalize(produced) == normalize(expected)


def bad_cases(model_label: str, samples: Sequence[EvalSample], produced: Sequence[str]) -> list[dict]:
    """One row per wrong answer of ``model_label``."""
    rows = []
    for sample, answer in zip(samples, produced, strict=True):
        if is_correct(answer, sample.expected):
            continue
        rows.append(
            {
                "model": model_label,
                "id": sample.id,
                "task": sample.task,
                "prompt": sample.messages,
                "expected": sample.expected,
                "produced": answer,
            }
        )
    return rows


def write_bad_cases(path: str | Path, rows: Sequence[dict]) -> int:
    """``bad_cases.jsonl`` (atomic); returns the count."""
    return write_jsonl(path, rows)
