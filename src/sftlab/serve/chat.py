"""Terminal chat: a multi-turn loop over any iterator of lines, so a pipe or a test can drive it.

Commands: ``/reset`` forgets the conversation, ``/system TEXT`` sets the system
prompt (and resets), ``/exit`` leaves. Replies stream token by token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

HELP = "commands: /reset, /system TEXT, /exit"


def chat_loop(
    model,
    tokenizer,
    lines: Iterable[str],
    write: Callable[[str], None],
    *,
    system: str | None = None,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = 0,
    prompt: str = "> ",
) -> list[dict[str, Any]]:
    """Chat until ``/exit`` or the end of ``lines``; returns the final conversation (messages)."""
    from sftlab.models.generate import stream_reply

    def fresh() -> list[dict[str, Any]]:
        return [{"role": "system", "content": system}] if system else []

    messages = fresh()
    write(prompt)
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line.strip() == "/exit":
            break
        if line.strip() == "/reset":
            messages = fresh()
            write("(conversation reset)\n")
        elif line.startswith("/system"):
            system = line.removeprefix("/system").strip() or None
            messages = fresh()
            write(f"(system prompt {'set' if system else 'cleared'}; conversation reset)\n")
        elif line.startswith("/"):
            write(f"unknown command {line.split()[0]}; {HELP}\n")
        elif line.strip():
            messages.append({"role": "user", "content": line})
            pieces = []
            for piece in stream_reply(
                model,
                tokenizer,
                messages,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=seed,
            ):
                pieces.append(piece)
                write(piece)
            messages.append({"role": "assistant", "content": "".join(pieces)})
            write("\n")
        write(prompt)
    return messages
