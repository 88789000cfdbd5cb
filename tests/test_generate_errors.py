"""``generate`` and ``chat`` never hang: bad settings are refused up front, a failure in the
generation thread ends the stream and is raised to the caller."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from sftlab.errors import SftlabError
from sftlab.models.generate import stream_reply

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["generate", "{model}", "hi", "--max-new-tokens", "-4"],
            "--max-new-tokens must be at least 1, got -4",
        ),
        (["generate", "{model}", "hi", "--temperature", "-1"], "--temperature must be 0 (greedy) or more"),
        (["chat", "{model}", "--max-new-tokens", "-1"], "--max-new-tokens must be at least 1, got -1"),
        (["chat", "{model}", "--top-p", "0"], "--top-p must be in (0, 1], got 0.0"),
    ],
)
def test_bad_settings_are_one_line_errors(tiny_model_dir, args, says):
    argv = [a.replace("{model}", str(tiny_model_dir)) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "sftlab.cli.main", *argv],
        input="hello\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {says}" or says in proc.stderr.strip().splitlines()[0]
    assert "Traceback" not in proc.stderr


def test_a_failure_in_the_generation_thread_reaches_the_caller(tiny_model, tokenizer):
    hidden = tiny_model.config.hidden_size
    # a real model with a broken output layer: generate raises inside the worker thread
    tiny_model.lm_head.weight = torch.nn.Parameter(torch.zeros(7, hidden + 1))
    with pytest.raises(RuntimeError):
        "".join(stream_reply(tiny_model, tokenizer, MESSAGES, max_new_tokens=4))


def test_library_callers_get_the_same_checks(tiny_model, tokenizer):
    with pytest.raises(SftlabError, match="at least 1"):
        list(stream_reply(tiny_model, tokenizer, MESSAGES, max_new_tokens=0))
    assert isinstance("".join(stream_reply(tiny_model, tokenizer, MESSAGES, max_new_tokens=3)), str)
