"""Bad input on the command line: one line naming the option or path, a non-zero exit, no traceback.

Each case runs the real console entry point in a fresh process, as a user would.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest


def _gguf_cases(tmp_path):
    from sftlab.models.embedded import embedded_gguf

    real = embedded_gguf("smollm2-135m-instruct").read_bytes()
    cases = {"text.gguf": b"hello\n", "t100.gguf": real[:100], "t1m.gguf": real[:1_000_000]}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    return cases


def _run(*args, stdin=""):
    return subprocess.run(
        [sys.executable, "-m", "sftlab.cli.main", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _one_line(proc, says, code=1):
    assert proc.returncode == code, proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-1500:]
    assert says in lines[0], lines[0]


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("text.gguf", "not a GGUF file"),
        ("t100.gguf", "a damaged or truncated GGUF file"),
        ("t1m.gguf", "a damaged or truncated GGUF file"),
    ],
)
def test_damaged_gguf(tmp_path, name, says):
    _gguf_cases(tmp_path)
    _one_line(_run("model", "info", tmp_path / name), f"{name}: {says}")


def test_export_unknown_dtype(tiny_model_dir, tmp_path):
    _one_line(
        _run("export", tiny_model_dir, "--out", tmp_path / "x", "--dtype", "int3"),
        "--dtype int3: choose one of",
    )
    assert not (tmp_path / "x").exists()


def test_serve_bad_port_and_host(tiny_model_dir):
    _one_line(
        _run("serve", tiny_model_dir, "--port", "99999"), "--port 99999: a TCP port is between 0 and 65535"
    )
    _one_line(_run("serve", tiny_model_dir, "--host", "no.such.host.invalid"), "--host no.such.host.invalid")


def test_serve_port_in_use(tiny_model_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        _one_line(_run("serve", tiny_model_dir, "--port", port), f"cannot listen on 127.0.0.1:{port}")


def test_convert_into_a_path_that_cannot_exist(tmp_path):
    src = tmp_path / "a.jsonl"
    src.write_text('{"instruction": "q", "output": "a"}\n')
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _one_line(_run("data", "convert", src, blocker / "out.jsonl", "--to", "sharegpt"), str(blocker))


def test_convert_missing_input(tmp_path):
    _one_line(
        _run("data", "convert", tmp_path / "nope.jsonl", tmp_path / "o.jsonl", "--to", "sharegpt"),
        "nope.jsonl",
    )
