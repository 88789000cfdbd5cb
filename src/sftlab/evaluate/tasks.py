"""Task metrics of generated answers: overall, per ``meta.task``, and one confusion matrix per task.

A mixed eval set (ticket JSON, review labels, identity) asks different things of different
records, so each task is scored on its own, a metric that does not apply to a task is
``None`` ("n/a" in the report, never a misleading 0), and each task's confusion matrix uses
that task's labels only — ticket categories and review labels never share a matrix. A record
whose answer is JSON and whose ``meta.label`` is one of its fields (``{"category": "billing"}``
with label ``billing``) is placed in the matrix by that field of the produced JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sftlab.evaluate.metrics import OTHER, compute_metrics, confusion_matrix, normalize, parse_json
from sftlab.evaluate.samples import EvalSample

ALL = "all"
"""Key of the one confusion matrix of an eval set without tasks."""


def task_scores(
    names: Sequence[str],
    samples: Sequence[EvalSample],
    produced: Sequence[str],
    *,
    labels: Sequence[str],
    schema: dict | None,
    custom: Any,
) -> dict[str, Any]:
    """Metrics overall and per ``meta.task``, plus a confusion matrix per task that has labels."""
    refs = [s.expected for s in samples]
    out: dict[str, Any] = {
        "n": len(samples),
        "overall": compute_metrics(names, produced, refs, labels=labels, schema=schema, custom=custom),
    }
    groups = task_groups(samples)
    if len(groups) > 1:
        out["per_task"] = {
            task: compute_metrics(
                names,
                [produced[i] for i in idx],
                [refs[i] for i in idx],
                labels=labels,
                schema=schema,
                custom=custom,
            )
            for task, idx in groups.items()
        }
    confusions = {}
    pairs = [label_pair(s, p) for s, p in zip(samples, produced, strict=True)]
    for task, idx in groups.items():
        own = task_labels(labels, [pairs[i][0] for i in idx])
        if own:
            columns, matrix = confusion_matrix([pairs[i][1] for i in idx], [pairs[i][0] for i in idx], own)
            confusions[task] = {"rows": own, "columns": columns, "matrix": matrix}
    if confusions:
        out["confusions"] = confusions
    return out


def scored_answers(
    names: Sequence[str], samples: Sequence[EvalSample], gens: Sequence[Any], **metric_kw: Any
) -> tuple[dict[str, Any], list[str]]:
    """Task scores of generated answers (anything with ``text`` and ``new_tokens``), with the answers listed."""
    produced = [g.text for g in gens]
    result = task_scores(names, samples, produced, **metric_kw)
    result["answers"] = [
        {"id": s.id, "expected": s.expected, "produced": p, "new_tokens": g.new_tokens}
        for s, p, g in zip(samples, produced, gens, strict=True)
    ]
    return result, produced


def task_groups(samples: Sequence[EvalSample]) -> dict[str, list[int]]:
    """Sample indices per ``meta.task`` (samples without one: ``"(no task)"``); one group ``all`` without tasks."""
    tasks = sorted({s.task for s in samples if s.task})
    if not tasks:
        return {ALL: list(range(len(samples)))}
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        groups.setdefault(s.task or "(no task)", []).append(i)
    return dict(sorted(groups.items()))


def label_pair(sample: EvalSample, produced: str) -> tuple[str, str]:
    """``(expected label, produced label)`` of one answer: the answers themselves, or for a JSON answer
    whose label is one of its fields, that field on both sides.

    >>> s = EvalSample("1", [], '{"category": "billing", "priority": "low"}', label="billing")
    >>> label_pair(s, '{"category": "account", "priority": "low"}')
    ('billing', 'account')
    >>> label_pair(s, "not json")
    ('billing', '<other>')
    """
    if not sample.label or normalize(sample.expected) == normalize(sample.label):
        return sample.expected, produced
    try:
        want = parse_json(sample.expected)
    except ValueError:
        return sample.expected, produced
    key = next(
        (k for k, v in want.items() if isinstance(v, str) and normalize(v) == normalize(sample.label)), None
    ) if isinstance(want, dict) else None  # fmt: skip
    if key is None:
        return sample.expected, produced
    try:
        got = parse_json(produced)
    except ValueError:
        return sample.label, OTHER
    value = got.get(key) if isinstance(got, dict) else None
    return sample.label, value if isinstance(value, str) else OTHER


def task_labels(labels: Sequence[str], references: Sequence[str]) -> list[str]:
    """The labels that occur among a task's references, in the label set's order.

    >>> task_labels(["billing", "bug", "positive", "negative"], ["Bug", "billing", "bug"])
    ['billing', 'bug']
    """
    present = {normalize(r) for r in references}
    return [label for label in labels if normalize(label) in present]


def labels_of(samples: Sequence[EvalSample]) -> list[str]:
    """``meta.label`` values of the eval set; else its answers when they are few and short (a classifier)."""
    found = sorted({s.label for s in samples if s.label})
    if found:
        return found
    answers = sorted({s.expected.strip() for s in samples})
    if 1 < len(answers) <= 20 and len(answers) * 2 <= len(samples) and all(len(a) <= 40 for a in answers):
        return answers
    return []
