"""Finding run folders under the runs folder, their headline and status, and paths that stay inside it.

A run folder holds ``recipe.resolved.yaml`` and/or ``report.json``. Its status
comes from the stage markers (``.sftlab/stages/<stage>.json`` when finished,
``<stage>.started`` when begun), the same files ``sftlab run`` skips by.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sftlab.pipeline.run import STAGES
from sftlab.pipeline.state import marker_path, started_path

RUN_FILES = ("recipe.resolved.yaml", "report.json")
SKIP_DIRS = {"cache", "checkpoints", "final", "tensorboard", "curation", "train", "eval", "preview"}
MAX_DEPTH = 3
REPORTS = [
    ("Run report", "report.html"),
    ("Curation", "curation/report.html"),
    ("Mask preview", "preview/preview.html"),
    ("Evaluation", "eval/report.html"),
]


class OutsideRoot(Exception):
    """A requested path that would leave the runs folder (``..``, absolute, or a symlink out)."""


def inside(root: Path, relative: str) -> Path:
    """``root / relative`` resolved, refusing anything that ends up outside ``root``.

    >>> import tempfile; root = Path(tempfile.mkdtemp())
    >>> inside(root, "a/b.txt") == root.resolve() / "a" / "b.txt"
    True
    >>> inside(root, "../etc/passwd")
    Traceback (most recent call last):
    ...
    sftlab.ui.runs.OutsideRoot: ../etc/passwd
    """
    parts = Path(relative).parts
    if not relative or Path(relative).is_absolute() or ".." in parts or "\x00" in relative:
        raise OutsideRoot(relative)
    base = root.resolve()
    target = (base / relative).resolve()  # follows symlinks: one pointing out is refused below
    if target != base and base not in target.parents:
        raise OutsideRoot(relative)
    return target


@dataclass
class RunInfo:
    """What the runs list shows for one run folder."""

    name: str
    path: Path
    headline: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        done = [s for s in STAGES if self.stages.get(s) == "done"]
        begun = [s for s in STAGES if self.stages.get(s) == "started"]
        if len(done) == len(STAGES):
            return "finished"
        if begun:
            return f"{begun[-1]} started"
        return f"{done[-1]} done" if done else "not started"


def is_run(path: Path) -> bool:
    return any((path / name).is_file() for name in RUN_FILES)


def find_runs(root: Path) -> list[RunInfo]:
    """Every run folder at most ``MAX_DEPTH`` levels under ``root`` (``root`` itself included), newest first."""
    root = root.resolve()
    found: list[Path] = []
    for folder, subdirs, _ in os.walk(root):
        here = Path(folder)
        depth = len(here.relative_to(root).parts)
        if is_run(here):
            found.append(here)
        subdirs[:] = sorted(
            d for d in subdirs if not d.startswith(".") and d not in SKIP_DIRS and depth < MAX_DEPTH
        )
    found.sort(key=lambda p: _mtime(p), reverse=True)
    return [load_run(root, p) for p in found]


def load_run(root: Path, path: Path) -> RunInfo:
    name = path.relative_to(root.resolve()).as_posix() or "."
    return RunInfo(name=name, path=path, headline=headline(path), stages=stage_states(path))


def stage_states(run: Path) -> dict[str, str]:
    """``stage → done | started`` for the stages that have a marker."""
    states = {}
    for stage in STAGES:
        if marker_path(run, stage).is_file():
            states[stage] = "done"
        elif started_path(run, stage).is_file():
            states[stage] = "started"
    return states


def headline(run: Path) -> dict[str, Any]:
    """The run report's headline, or what the stage outputs written so far say."""
    report = read_json(run / "report.json")
    if isinstance(report.get("headline"), dict) and report["headline"]:
        return report["headline"]
    head: dict[str, Any] = {}
    curation = read_json(run / "curation" / "report.json")
    if "records_in" in curation:
        head["records in → kept"] = f"{curation['records_in']} → {curation.get('kept')}"
    summary = read_json(run / "train" / "summary.json")
    if "steps" in summary:
        head["training steps"] = summary["steps"]
    if summary.get("train_loss_tail") is not None:
        head["train loss (last 10% of steps)"] = round(summary["train_loss_tail"], 4)
    evaluation = read_json(run / "eval" / "report.json")
    if evaluation.get("primary_metric"):
        head["primary metric"] = evaluation["primary_metric"]
    return head


def reports(run: Path) -> list[tuple[str, str]]:
    """``(title, path relative to the run)`` of the HTML reports this run has."""
    return [(title, rel) for title, rel in REPORTS if (run / rel).is_file()]


def read_metrics(run: Path) -> dict[str, list[dict[str, float]]]:
    """Training loss and eval loss by step from ``train/metrics.jsonl`` (a line being written is skipped)."""
    path = run / "train" / "metrics.jsonl"
    train, evals = [], []
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if not isinstance(row, dict) or not isinstance(row.get("step"), (int, float)):
                continue
            if isinstance(row.get("loss"), (int, float)):
                train.append({"step": row["step"], "loss": row["loss"]})
            if isinstance(row.get("eval_loss"), (int, float)):
                evals.append({"step": row["step"], "loss": row["eval_loss"]})
    return {"train": train, "eval": evals}


def planned_steps(run: Path) -> int | None:
    """Optimizer steps the training will take, when known (``training.max_steps``, or the finished summary)."""
    import yaml

    summary = read_json(run / "train" / "summary.json")
    if isinstance(summary.get("max_steps"), int):
        return summary["max_steps"]
    try:
        recipe = yaml.safe_load((run / "recipe.resolved.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    steps = (recipe.get("training") or {}).get("max_steps") if isinstance(recipe, dict) else None
    return steps if isinstance(steps, int) else None


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _mtime(path: Path) -> float:
    try:
        return max((path / n).stat().st_mtime for n in RUN_FILES if (path / n).exists())
    except ValueError:
        return 0.0
