"""A kill at any point of ``sftlab data curate`` leaves the old complete outputs or the new complete ones.

The curation folder is built in a staging folder and swapped in by rename; a
killed run's temporaries are removed by the next run. Each kill lands at a
different moment of a ~3 s run (start-up, reading, dedup, report, publishing).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from curate_helpers import VOCAB

WORDS = VOCAB[:12]


def _consistent(folder) -> dict:
    """The folder's report agrees with its files (a mix of two runs would not)."""
    report = json.loads((folder / "report.json").read_text())
    kept = len((folder / "kept.jsonl").read_text(encoding="utf-8").splitlines())
    rejects = len((folder / "rejects.jsonl").read_text(encoding="utf-8").splitlines())
    assert (kept, rejects) == (report["kept"], report["rejected"])
    return report


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("kill")
    rng = random.Random(0)
    with open(d / "d.jsonl", "w") as fh:
        for i in range(8000):
            q = " ".join(rng.choice(WORDS) for _ in range(10))
            a = " ".join(rng.choice(WORDS) for _ in range(30))
            fh.write(json.dumps({"instruction": f"{q} {i}?", "output": a}) + "\n")
    steps = "[{type: normalize}, {type: exact_dedup}, {type: minhash_dedup}]"
    (d / "r.yaml").write_text(
        f"name: k\noutput_dir: {d / 'run'}\ndata: {{sources: [{{path: {d / 'd.jsonl'}}}]}}\n"
        f"curation: {{steps: {steps}}}\n"
    )
    return d


def _curate(workdir, *overrides):
    return subprocess.Popen(
        [sys.executable, "-m", "sftlab.cli.main", "data", "curate", str(workdir / "r.yaml"), *overrides],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "SFTLAB_PROGRESS": "0"},
    )


def test_kill_at_many_points(workdir):
    out = workdir / "run" / "curation"
    assert _curate(workdir).wait(timeout=300) == 0
    first = _consistent(out)["kept"]
    other = "data.sources.0.limit=5000"  # a run with another result
    assert _curate(workdir, other).wait(timeout=300) == 0
    second = _consistent(out)["kept"]
    assert second != first
    assert _curate(workdir).wait(timeout=300) == 0
    for delay in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.5):
        proc = _curate(workdir, other)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert _consistent(out)["kept"] in (first, second)  # old or new, complete either way
    assert _curate(workdir).wait(timeout=300) == 0
    assert _consistent(out)["kept"] == first
    leftovers = [p.name for p in out.parent.iterdir() if p.name.startswith(".curation.")]
    assert leftovers == []  # the killed runs' staging folders were removed by the last run
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_foreign_files_are_not_swept_away(workdir, capsys):
    from sftlab.cli.main import main

    folder = workdir / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    assert main(["data", "curate", str(workdir / "r.yaml"), "--out", str(folder)]) == 1
    assert "holds files curation did not write (notes.txt)" in capsys.readouterr().err
    assert (folder / "notes.txt").read_text() == "keep me"


def test_unwritable_folder_is_one_line(workdir, capsys):
    from sftlab.cli.main import main

    blocker = workdir / "a-file"
    blocker.write_text("not a folder")
    assert main(["data", "curate", str(workdir / "r.yaml"), "--out", str(blocker / "c")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot write the curation outputs in") and "\n" not in err


def test_a_dead_writers_temporaries_are_removed_by_the_next(tmp_path):
    from sftlab.utils.atomic import atomic_path, remove_stale

    target = tmp_path / "kept.jsonl"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)  # a process that has exited
    (tmp_path / f".kept.jsonl.{pid}.abc.tmp").write_text("half")
    (tmp_path / f".kept.jsonl.{pid}.dir").mkdir()
    alive = tmp_path / f".kept.jsonl.{os.getpid()}.mine.tmp"
    alive.write_text("in use")
    with atomic_path(target) as tmp:
        tmp.write_text("done\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["kept.jsonl", alive.name])
    # a folder moved aside by a writer killed between its two renames is put back
    folder = tmp_path / "curation"
    old = tmp_path / ".curation.old"
    old.mkdir()
    (old / "kept.jsonl").write_text("old\n")
    remove_stale(folder)
    assert (folder / "kept.jsonl").read_text() == "old\n" and not old.exists()
