"""One look for progress: rich bars on a terminal, a plain line every few seconds anywhere else.

Off a terminal (CI, ``nohup``, a scheduler's log file) a bar is carriage-return
junk and a silent job looks hung, so :class:`PlainProgress` prints one line per
task every ``SFTLAB_PROGRESS_EVERY`` seconds (default 10) instead::

    [04:12:09] train 40/156 (26%) · elapsed 1m20s · eta 3m52s · loss 0.1234 · 1,234 tok/s

``SFTLAB_PROGRESS=1`` forces bars, ``=0`` turns progress off. Consoles never
wrap lines when they are not writing to a terminal.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")
DEFAULT_EVERY = 10.0


def is_terminal(stream=None) -> bool:
    return (stream or sys.stderr).isatty()


console = Console(stderr=True, soft_wrap=not is_terminal())


def progress_enabled() -> bool:
    """Bars are drawn on a terminal unless ``SFTLAB_PROGRESS=0``; ``=1`` forces them."""
    flag = os.environ.get("SFTLAB_PROGRESS")
    if flag is not None:
        return flag not in ("0", "false", "no")
    return is_terminal()


def plain_every() -> float | None:
    """Seconds between plain progress lines; ``None`` when progress is switched off."""
    flag = os.environ.get("SFTLAB_PROGRESS")
    if flag is not None and flag in ("0", "false", "no"):
        return None
    try:
        return max(float(os.environ.get("SFTLAB_PROGRESS_EVERY", DEFAULT_EVERY)), 0.0)
    except ValueError:
        return DEFAULT_EVERY


def duration(seconds: float) -> str:
    """``75`` → ``'1m15s'``; ``3725`` → ``'1h02m'``.

    >>> duration(9.4), duration(75), duration(3725)
    ('9s', '1m15s', '1h02m')
    """
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float = 0
    info: str = ""
    started: float = field(default_factory=time.monotonic)
    start_completed: float = 0
    last_line: float = field(default_factory=time.monotonic)


class PlainProgress:
    """The part of rich's ``Progress`` interface sftlab uses, writing plain lines to stderr."""

    def __init__(self, every: float | None = DEFAULT_EVERY, stream=None):
        self.every = every
        self.stream = stream
        self.tasks: dict[int, _Task] = {}

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        """Nothing to draw until a task has run for a while."""

    def stop(self) -> None:
        for task_id in list(self.tasks):
            self._finish(task_id)

    def add_task(self, description: str, total: float | None = None, completed: float = 0, **fields) -> int:
        task_id = len(self.tasks)
        self.tasks[task_id] = _Task(
            description, total, completed, str(fields.get("info", "")), start_completed=completed
        )
        return task_id

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(self, task_id: int, *, completed=None, advance=None, total=None, description=None, **fields):
        task = self.tasks.get(task_id)
        if task is None:
            return
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        if total is not None:
            task.total = total
        if description is not None:
            task.description = description
        if "info" in fields:
            task.info = str(fields["info"])
        now = time.monotonic()
        if self.every is not None and now - task.last_line >= self.every:
            task.last_line = now
            self._write(task, now)

    def _finish(self, task_id: int) -> None:
        """A closing line, only for tasks long enough to have been reported on."""
        task = self.tasks.pop(task_id)
        now = time.monotonic()
        if self.every is not None and now - task.started >= self.every:
            self._write(task, now, done=True)

    def _write(self, task: _Task, now: float, *, done: bool = False) -> None:
        self.write_line(line(task, now, done=done))

    def write_line(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(text + "\n")
        stream.flush()


def line(task: _Task, now: float, *, done: bool = False) -> str:
    """One progress line: count, share, elapsed, ETA (from the rate since the task began), info."""
    elapsed = now - task.started
    count = f"{task.completed:,.0f}"
    parts = [f"[{time.strftime('%H:%M:%S')}] {task.description} {count}"]
    if task.total:
        parts[0] += f"/{task.total:,.0f} ({100 * task.completed / task.total:.0f}%)"
    parts.append(f"{'took' if done else 'elapsed'} {duration(elapsed)}")
    done_now = task.completed - task.start_completed
    if not done and task.total and done_now > 0 and task.completed < task.total:
        parts.append(f"eta {duration(elapsed / done_now * (task.total - task.completed))}")
    if task.info:
        parts.append(task.info)
    return " · ".join(parts)


def make_progress(*, transient: bool = False) -> Progress | PlainProgress:
    """Rich bars on a terminal (count, elapsed, ETA, info); plain periodic lines elsewhere."""
    if not progress_enabled():
        return PlainProgress(plain_every())
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=transient,
    )


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` with progress (``total`` defaults to ``len(items)``)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with make_progress() as progress:
        task = progress.add_task(description, total=total, info="")
        for item in items:
            yield item
            progress.advance(task)
