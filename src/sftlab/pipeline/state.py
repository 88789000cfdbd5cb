"""Stage completion markers: a stage is up to date when its marker holds the fingerprint of its inputs.

``<run>/.sftlab/stages/<stage>.json`` is written (atomically) only after the
stage's outputs are complete, so an interrupted stage simply runs again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sftlab.utils.atomic import write_json


def marker_path(run_dir: Path, stage: str) -> Path:
    return run_dir / ".sftlab" / "stages" / f"{stage}.json"


def is_done(run_dir: Path, stage: str, fingerprint: str) -> bool:
    path = marker_path(run_dir, stage)
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text())["fingerprint"] == fingerprint
    except (ValueError, KeyError):
        return False


def mark_done(run_dir: Path, stage: str, fingerprint: str, summary: dict[str, Any]) -> None:
    write_json(marker_path(run_dir, stage), {"stage": stage, "fingerprint": fingerprint, "summary": summary})


def read_summary(run_dir: Path, stage: str) -> dict[str, Any] | None:
    path = marker_path(run_dir, stage)
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("summary")


def clear_from(run_dir: Path, stages: list[str]) -> None:
    """Forget completion of ``stages`` (``--from``): they and everything after run again."""
    for stage in stages:
        marker_path(run_dir, stage).unlink(missing_ok=True)


def started_path(run_dir: Path, stage: str) -> Path:
    return run_dir / ".sftlab" / "stages" / f"{stage}.started"


def mark_started(run_dir: Path, stage: str, fingerprint: str) -> None:
    """Record which inputs a stage began with, so that a later run resumes only its own partial work."""
    write_json(started_path(run_dir, stage), {"stage": stage, "fingerprint": fingerprint})


def started_with(run_dir: Path, stage: str) -> str | None:
    """The fingerprint a stage last began with (``None`` if never, or unreadable)."""
    try:
        return json.loads(started_path(run_dir, stage).read_text())["fingerprint"]
    except (OSError, ValueError, KeyError):
        return None
