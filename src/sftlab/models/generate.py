"""Answer a prompt with the model's chat template applied (the way inference will see it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def check_generation_args(*, max_new_tokens: int, temperature: float, top_p: float = 1.0) -> None:
    """Refuse settings generation cannot honour, naming the option, before any work starts."""
    from sftlab.errors import SftlabError

    if max_new_tokens < 1:
        raise SftlabError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    if not temperature >= 0:  # also catches NaN
        raise SftlabError(f"--temperature must be 0 (greedy) or more, got {temperature}")
    if not 0 < top_p <= 1:
        raise SftlabError(f"--top-p must be in (0, 1], got {top_p}")


def chat_inputs(tokenizer, messages: list[dict[str, Any]], device: Any = "cpu"):
    """Token ids of ``messages`` rendered with the chat template plus the generation prompt."""
    if getattr(tokenizer, "chat_template", None):
        enc = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
    else:
        text = "\n".join(m["content"] for m in messages)
        enc = tokenizer(text, return_tensors="pt")
    return {k: v.to(device) for k, v in enc.items()}


def generate_reply(
    model,
    tokenizer,
    messages: list[dict[str, Any]],
    *,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
) -> str:
    """Greedy (temperature 0) or sampled reply to ``messages``; special tokens stripped."""
    return "".join(
        stream_reply(
            model,
            tokenizer,
            messages,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            stream=False,
        )
    )


def stream_reply(
    model,
    tokenizer,
    messages: list[dict[str, Any]],
    *,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
    stream: bool = True,
) -> Iterator[str]:
    """Yield the reply text piece by piece as tokens are generated.

    Generation runs in a thread; an error there ends the stream and is raised
    here, so a caller never waits forever on a stream nobody feeds.
    """
    import threading

    import torch
    from transformers import TextIteratorStreamer

    check_generation_args(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    inputs = chat_inputs(tokenizer, messages, device=model.device)
    if seed is not None:
        torch.manual_seed(seed)
    kwargs: dict[str, Any] = dict(
        **inputs,
        max_new_tokens=max_new_tokens,
        do_sample=temperature > 0,
        pad_token_id=tokenizer.pad_token_id,
    )
    if temperature > 0:
        kwargs.update(temperature=temperature, top_p=top_p)
    if not stream:
        with torch.inference_mode():
            out = model.generate(**kwargs)
        yield tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        return
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    kwargs["streamer"] = streamer

    failure: list[BaseException] = []

    def run() -> None:
        try:
            with torch.inference_mode():
                model.generate(**kwargs)
        except BaseException as err:  # handed to the consumer below
            failure.append(err)
        finally:
            streamer.end()  # wakes the consumer even when generate never got to it

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield from streamer
    thread.join()
    if failure:
        raise failure[0]
