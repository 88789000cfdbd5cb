"""Usage mistakes: one line naming the mistake and where to get help, exit 2, never a traceback.

Run as a real process, since the console script is what users call and a
traceback would only show on its stderr.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

CASES = [
    (["nosuch"], "No such command 'nosuch'", "'sftlab --help'"),
    (["data", "curat"], "Did you mean 'curate'?", "'sftlab data --help'"),
    (["data", "curate"], "Missing argument 'recipe'", "'sftlab data curate --help'"),
    (["recipe", "check", "r.yaml", "--bogus"], "No such option: --bogus", "'sftlab recipe check --help'"),
    (["train", "r.yaml", "--resume=3"], "does not take a value", "--help'"),
]


def _sftlab(*args):
    return subprocess.run(
        [sys.executable, "-m", "sftlab.cli.main", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(("args", "says", "hint"), CASES)
def test_usage_error_is_one_line_exit_2(args, says, hint):
    proc = _sftlab(*args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert says in lines[0] and hint in lines[0]


def test_bare_command_prints_help_exit_2():
    proc = _sftlab()
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "Usage: sftlab" in proc.stdout and "curate" in proc.stdout


def test_help_is_exit_0():
    proc = _sftlab("--help")
    assert proc.returncode == 0 and "Usage: sftlab" in proc.stdout


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["data", "preview", "r.yaml", "--n", "-1"], "--n"),
        (["data", "preview", "r.yaml", "--limit", "0"], "--limit"),
        (["serve", "m", "--max-batch", "0"], "--max-batch"),
        (["estimate", "m", "--zero", "4"], "--zero"),
    ],
)
def test_numbers_out_of_range_name_the_option(args, option):
    proc = _sftlab(*args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert line.startswith("error: Invalid value for") and f"'{option}'" in line
