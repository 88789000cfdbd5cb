"""Atomic outputs: write to a temporary sibling, then rename over the target.

A crash (or SIGKILL) mid-write leaves either the old file or the new one, never
half a file; stages rely on this to decide what is up to date. Temporary names
carry the writer's pid (``.<name>.<pid>.<random>``), so the next writer of the
same target removes what a killed one left behind, and a folder caught between
its two renames (old moved aside, new not yet in place) is put back.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(target: str | Path, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success rename it to ``target``.

    >>> with atomic_path("/tmp/sftlab-doc.txt") as tmp:
    ...     _ = tmp.write_text("done")
    >>> Path("/tmp/sftlab-doc.txt").read_text()
    'done'
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target)
    prefix = f".{target.name}.{os.getpid()}."
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        make_readable(tmp)
        if is_dir:
            if target.exists():
                old = target.with_name(f".{target.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                target.rename(old)
                tmp.rename(target)  # a kill before this line is undone by remove_stale
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(target)
        else:
            os.replace(tmp, target)
    except BaseException:
        if is_dir:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        raise


def make_readable(path: str | Path) -> None:
    """Give ``path`` (and, for a folder, everything in it) the permissions a plain new file or folder gets.

    mkstemp/mkdtemp (and safetensors) create 0600/0700 files, private while being written; a published
    output should be readable like any other: 0644 files and 0755 folders under the usual umask 022.
    """
    path = Path(path)
    mask = _umask()
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o777 & ~mask)
            for name in files:
                os.chmod(os.path.join(root, name), 0o666 & ~mask)


def _umask() -> int:
    """The process umask, read without changing it (Linux) or by setting and restoring it."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_stale(target: str | Path) -> list[Path]:
    """Remove temporaries of ``target`` left by writers that are no longer running; return them.

    A folder whose old copy was moved aside but whose new copy never arrived is restored.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return []
    old = target.with_name(f".{target.name}.old")
    if old.is_dir():
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.rename(target)
    removed = []
    for path in target.parent.glob(f".{glob.escape(target.name)}.*"):
        pid = path.name[len(target.name) + 2 :].split(".", 1)[0]
        if path == old or not pid.isdigit() or _alive(int(pid)):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def write_text(target: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically and return the target path."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: str | Path, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON atomically (UTF-8, non-ASCII kept readable)."""
    return write_text(target, json.dumps(obj, ensure_ascii=False, indent=indent, default=str) + "\n")


def write_jsonl(target: str | Path, rows: Any) -> int:
    """Write an iterable of JSON-able rows atomically, one per line; return the count."""
    n = 0
    with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            n += 1
    return n
