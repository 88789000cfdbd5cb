"""Runs started from the workbench: ``sftlab run RECIPE [overrides] [--until STAGE]`` as a child process.

Only recipe files inside the recipes folder (``sftlab ui --recipes``) can be
started, and overrides must look like ``key.path=value``, so a request can
neither name another file nor smuggle an option in. The recipe is loaded
first: a bad recipe or override is one line back to the page, not a failed
process. Stopping sends SIGINT, which the CLI turns into a clean
``interrupted`` exit; stages are restartable, so the run resumes next time.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from sftlab.errors import SftlabError
from sftlab.pipeline.run import STAGES
from sftlab.ui.runs import OutsideRoot, inside

# The child restores Ctrl-C before anything else: a process started in the background by a shell without job
# control (nohup, CI, `cmd &`) inherits SIGINT ignored, so "stop" would otherwise only land with SIGTERM.
_CHILD = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from sftlab.cli.main import main; sys.exit(main(sys.argv[1:]))"
)
OVERRIDE = re.compile(r"^[A-Za-z_][\w.\-]*=[^\n\r]*$")
RECIPE_SUFFIXES = (".yaml", ".yml")


class BadJob(ValueError):
    """A start request that cannot be run (answered with 400)."""


@dataclass
class Job:
    id: int
    recipe: str
    command: list[str]
    proc: subprocess.Popen
    log: Path
    run: str | None  # the run folder relative to the runs folder, when it lies inside it
    stopped: bool = False

    @property
    def state(self) -> str:
        code = self.proc.poll()
        if code is None:
            return "running"
        if self.stopped:
            return "stopped"
        return "finished" if code == 0 else f"failed (exit {code})"


class Jobs:
    """The runs this workbench started (kept while it runs; logs in a temporary folder)."""

    def __init__(self, recipes_dir: Path, root: Path):
        self.recipes_dir = recipes_dir.resolve()
        self.root = root.resolve()
        self.logs = Path(tempfile.mkdtemp(prefix="sftlab-ui-logs-"))
        self.jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def recipes(self) -> list[str]:
        """Recipe files (``*.yaml``) at most two folders deep in the recipes folder, outside the runs folder."""
        found = []
        for depth in ("*", "*/*", "*/*/*"):
            for suffix in RECIPE_SUFFIXES:
                for path in self.recipes_dir.glob(depth + suffix):
                    if path.is_file() and self.root not in path.resolve().parents:
                        found.append(path.relative_to(self.recipes_dir).as_posix())
        return sorted(set(found))

    def start(self, recipe: str, overrides: list[str], until: str | None) -> Job:
        from sftlab.recipe.load import load_recipe

        try:
            path = inside(self.recipes_dir, recipe)
        except OutsideRoot:
            raise BadJob(f"recipe {recipe!r}: not inside the recipes folder {self.recipes_dir}") from None
        if path.suffix not in RECIPE_SUFFIXES or not path.is_file():
            raise BadJob(f"recipe {recipe!r}: no such recipe file (.yaml) in {self.recipes_dir}")
        bad = [o for o in overrides if not OVERRIDE.match(o)]
        if bad:
            raise BadJob(f"override {bad[0]!r}: write key.path=value, one per line")
        if until and until not in STAGES:
            raise BadJob(f"until {until!r}: one of {', '.join(STAGES)}")
        try:
            output = Path(load_recipe(path, overrides).output_dir).resolve()
        except SftlabError as err:
            raise BadJob(str(err)) from None
        run = output.relative_to(self.root).as_posix() if self.root in output.parents else None
        command = [sys.executable, "-c", _CHILD, "run", str(path), *overrides]
        command += ["--until", until] if until else []
        with self._lock:
            job_id = next(self._ids)
            log = self.logs / f"job-{job_id}.log"
            with open(log, "wb") as fh:
                env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "100"}
                proc = subprocess.Popen(
                    command,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                )
            self.jobs[job_id] = Job(job_id, recipe, command, proc, log, run)
        return self.jobs[job_id]

    def get(self, job_id: int) -> Job | None:
        return self.jobs.get(job_id)

    def stop(self, job: Job, grace: float = 60.0) -> None:
        """SIGINT (the CLI exits cleanly, 130); SIGTERM if it has not ended within ``grace`` seconds, SIGKILL
        10 s later. Returns once the process has ended, so the answer says "stopped", never "running"."""
        if job.proc.poll() is not None:
            return
        job.stopped = True
        job.proc.send_signal(signal.SIGINT)
        for escalate, wait in ((job.proc.terminate, grace), (job.proc.kill, 10.0), (None, 10.0)):
            try:
                job.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                if escalate is not None:
                    escalate()

    def read_log(self, job: Job, offset: int, limit: int = 200_000) -> tuple[str, int]:
        """The log from byte ``offset`` on (at most ``limit`` bytes) and the offset after it."""
        with open(job.log, "rb") as fh:
            fh.seek(max(0, offset))
            data = fh.read(limit)
        return data.decode("utf-8", errors="replace"), max(0, offset) + len(data)

    def close(self) -> None:
        for job in self.jobs.values():
            if job.proc.poll() is None:
                job.proc.terminate()
