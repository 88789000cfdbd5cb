"""Terminal chat: driven by piped lines, with the real template and a tiny model."""

from __future__ import annotations

import os
import subprocess
import sys

from sftlab.models.generate import generate_reply
from sftlab.serve.chat import chat_loop


def test_multi_turn_commands_and_history(tiny_model, tokenizer):
    written: list[str] = []
    lines = ["hello", "/system Be terse.", "how are you?", "again", "/reset", "/bogus", "/exit", "never read"]
    messages = chat_loop(tiny_model, tokenizer, iter(lines), written.append, max_new_tokens=5, prompt="")
    output = "".join(written)
    assert "(system prompt set; conversation reset)" in output
    assert "(conversation reset)" in output and "unknown command /bogus" in output
    # /reset keeps the system prompt and drops the turns; /exit stopped before "never read".
    assert messages == [{"role": "system", "content": "Be terse."}]

    history = chat_loop(
        tiny_model, tokenizer, iter(["one", "two"]), lambda _s: None, system="S", max_new_tokens=5
    )
    assert [m["role"] for m in history] == ["system", "user", "assistant", "user", "assistant"]
    # The second reply answers the whole conversation, not just the last line.
    expected = generate_reply(tiny_model, tokenizer, history[:4], max_new_tokens=5)
    assert history[4]["content"] == expected


def test_cli_chat_reads_stdin(tiny_model_dir):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "SFTLAB_PROGRESS": "0"}
    code = "import sys, torch; torch.set_num_threads(1); from sftlab.cli.main import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, "chat", str(tiny_model_dir), "--max-new-tokens", "4", "--system", "Hi"],
        input="first question\n/reset\nsecond\n/exit\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") >= 3 and "(conversation reset)" in proc.stdout
