"""Batched greedy generation with the model's chat template, the way inference will see the prompt.

Prompts are sorted by length and left-padded so that every row's last prompt
token sits in the same column and the KV cache grows in step for the batch;
results come back in the input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sftlab.utils.progress import make_progress


@dataclass
class Generation:
    """One answer: its text (special tokens stripped) and token counts."""

    text: str
    new_tokens: int
    prompt_tokens: int


def encode_chat(
    tokenizer, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> list[int]:
    """Token ids of ``messages`` (and the ``tools`` offered) with the chat template and generation prompt
    (plain lines without a template)."""
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(
            messages, tools=tools or None, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return list(ids["input_ids"])
    text = "\n".join(m["content"] for m in messages) + "\n"
    return tokenizer(text, add_special_tokens=True).input_ids


def stop_ids(model, tokenizer) -> list[int]:
    """Token ids that end an answer: the tokenizer's EOS and the model's generation-config EOS."""
    ids = {tokenizer.eos_token_id}
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos])
    return sorted(i for i in ids if i is not None)


def left_pad(rows: Sequence[Sequence[int]], pad_id: int, device: Any):
    """``input_ids``, ``attention_mask`` and ``position_ids`` of left-padded rows.

    Position ids count real tokens only, so a padded row is computed exactly as it would be alone.
    """
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), positions.to(device)


def generate_batch(
    model,
    tokenizer,
    prompts: Sequence[list[dict[str, Any]] | list[int]],
    *,
    max_new_tokens: int = 128,
    batch_size: int = 8,
    description: str = "generate",
    tools: Sequence[list[dict[str, Any]] | None] | None = None,
) -> list[Generation]:
    """Greedy answers to chat prompts (message lists, or already-encoded token ids), in input order;
    ``tools[i]`` are the tool schemas offered to prompt ``i``."""
    import torch

    tools = tools or [None] * len(prompts)
    encoded = [
        p if p and isinstance(p[0], int) else encode_chat(tokenizer, p, t)
        for p, t in zip(prompts, tools, strict=True)
    ]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    stops = stop_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    results: list[Generation | None] = [None] * len(encoded)
    device = next(model.parameters()).device
    model.eval()
    with make_progress() as progress:
        task = progress.add_task(description, total=len(encoded), info="")
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            ids, mask, _ = left_pad([encoded[i] for i in chunk], pad_id, device)
            with torch.inference_mode():
                out = model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                    eos_token_id=stops,
                    pad_token_id=pad_id,
                    use_cache=True,
                )
            for row, i in enumerate(chunk):
                new = out[row, ids.shape[1] :].tolist()
                n = next((j + 1 for j, t in enumerate(new) if t in stops), len(new))
                text = tokenizer.decode(new[:n], skip_special_tokens=True)
                results[i] = Generation(text=text.strip(), new_tokens=n, prompt_tokens=len(encoded[i]))
            progress.advance(task, len(chunk))
    return [r for r in results if r is not None]
