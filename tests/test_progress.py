"""Off a terminal, long work prints a plain progress line every few seconds: no bars, no wrapping."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

from sftlab.utils.progress import PlainProgress, duration, make_progress


def test_plain_lines_carry_count_share_eta_and_info():
    out = io.StringIO()
    with PlainProgress(every=0, stream=out) as progress:
        task = progress.add_task("train", total=4, info="")
        progress.update(task, completed=1, info="loss 1.2345 · 900 tok/s")
        progress.advance(task)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("train 1/4 (25%) · elapsed 0s · eta 0s · loss 1.2345 · 900 tok/s")
    assert "train 2/4 (50%)" in lines[1]
    assert "took" in lines[-1]


def test_quiet_until_the_interval_has_passed():
    out = io.StringIO()
    with PlainProgress(every=3600, stream=out) as progress:
        task = progress.add_task("tokenize", total=10, info="")
        for _ in range(10):
            progress.advance(task)
    assert out.getvalue() == ""  # short work prints nothing, not even a closing line


def test_make_progress_picks_plain_off_a_terminal(monkeypatch):
    monkeypatch.delenv("SFTLAB_PROGRESS", raising=False)
    assert isinstance(make_progress(), PlainProgress)  # pytest's stderr is not a terminal
    monkeypatch.setenv("SFTLAB_PROGRESS", "0")
    assert make_progress().every is None


def test_duration():
    assert [duration(s) for s in (0, 59, 61, 3600)] == ["0s", "59s", "1m01s", "1h00m"]


def test_training_to_a_log_file_reports_progress(tiny_model_dir, tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": f"q {i}?"}, {"role": "assistant", "content": f"a {i}"}]}
        for i in range(8)
    ]
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"output_dir: {tmp_path / 'run'}\nmodel: {{name: {tiny_model_dir}}}\n"
        f"data: {{sources: [{{path: {data}}}], eval_fraction: 0.25}}\nrender: {{max_length: 64}}\n"
        "training: {max_steps: 4, batch_size: 2, logging_steps: 1}\n"
    )
    log = tmp_path / "train.log"
    env = {**os.environ, "SFTLAB_PROGRESS_EVERY": "0", "COLUMNS": "80"}
    env.pop("SFTLAB_PROGRESS", None)
    with open(log, "w") as fh:
        proc = subprocess.run(
            [sys.executable, "-m", "sftlab.cli.main", "train", str(recipe), "--skip-doctor"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=600,
        )
    text = log.read_text()
    assert proc.returncode == 0, text[-2000:]
    assert "\r" not in text and "\x1b[" not in text  # no bars, no colour codes
    train_lines = [x for x in text.splitlines() if "] train " in x]
    assert any("/4 (" in x and "loss " in x and "tok/s" in x for x in train_lines), text[-2000:]
    assert "render: 6 records = 6 trained + 0 dropped, 0 truncated" in text  # 8 records, 2 held out
