"""Log-likelihood of answer texts after their prompt: what cloze scoring and ``option_text`` rest on.

Each prompt runs once; its options then run on top of its KV cache. Options vary a lot in
length (``"darwin"`` next to a sentence), so they are sorted by length and run in sub-batches
of similar width, and the LM head runs only where an option token is predicted, never on
padding (over a 49k vocabulary the head costs a fifth of the model per position)::

    prompts   [pad p0 p1 p2] [q0 q1 q2 q3]    one left-padded batch -> cache, log p(first token)
    options   [a0 a1 a2] [c0 c1 c2]           longest first, each on a copy of its prompt's cache
              [b0 b1 pad] [d0 pad pad]        LM head on a0 a1 | c0 c1 | b0 | (d: first token only)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from sftlab.evaluate.generation import left_pad
from sftlab.models.kv_cache import cache_kwarg, cache_of
from sftlab.utils.progress import make_progress

PAIRS_PER_PROMPT_ROW = 2
"""Option rows per sub-batch, per prompt in a batch: enough width to keep the matmuls efficient."""


def encode_options(tokenizer, options: Sequence[Sequence[str]]) -> list[list[list[int]]]:
    """Token ids of `` `` + each option (an empty option scores the end-of-sequence token)."""
    return [
        [
            tokenizer(" " + opt.strip(), add_special_tokens=False).input_ids or [tokenizer.eos_token_id]
            for opt in opts
        ]
        for opts in options
    ]


def score_continuations(
    model,
    tokenizer,
    prompts: Sequence[str],
    options: Sequence[Sequence[str]],
    *,
    batch_size: int = 8,
    description: str = "score",
) -> list[list[float]]:
    """Summed log-probability of each option's text (`` `` + text) after its prompt, batched.

    The numbers equal scoring ``prompt + option`` as one sequence, one at a time (tested).
    """
    import torch

    limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    contexts = [tokenizer(p, add_special_tokens=True).input_ids for p in prompts]
    conts = encode_options(tokenizer, options)
    if limit:  # keep the end of an over-long prompt, leaving room for its longest option
        contexts = [c[-(limit - max(map(len, o))) :] for c, o in zip(contexts, conts, strict=True)]
    order = sorted(range(len(contexts)), key=lambda i: -len(contexts[i]))
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    scores = [[0.0] * len(opts) for opts in options]
    model.eval()
    with make_progress() as progress, torch.inference_mode():
        task = progress.add_task(description, total=len(contexts), info="")
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            ids, mask, pos = left_pad([contexts[i] for i in chunk], pad_id, device)
            first = model(
                input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1
            )
            first_logp = torch.log_softmax(first.logits[:, -1, :].float(), dim=-1).cpu()
            pairs = sorted(
                ((row, i, oi) for row, i in enumerate(chunk) for oi in range(len(conts[i]))),
                key=lambda p: -len(conts[p[1]][p[2]]),
            )
            for row, i, oi in pairs:
                scores[i][oi] = float(first_logp[row, conts[i][oi][0]])
            step = max(PAIRS_PER_PROMPT_ROW * len(chunk), 1)
            groups = [pairs[g : g + step] for g in range(0, len(pairs), step)]
            for n, group in enumerate(groups):
                rest = [conts[i][oi] for _, i, oi in group]
                if len(rest[0]) < 2:
                    break  # sorted longest first: every option left is one token, already scored
                cache = cache_of(first) if n == len(groups) - 1 else copy.deepcopy(cache_of(first))
                rows = torch.tensor([row for row, _, _ in group], device=device)
                for (_, i, oi), total in zip(
                    group, _later_tokens(model, rest, rows, mask, cache, pad_id), strict=True
                ):
                    scores[i][oi] += total
            progress.advance(task, len(chunk))
    return scores


def _later_tokens(model, rest: list[list[int]], rows, prompt_mask, cache, pad_id: int) -> list[float]:
    """Summed log p of tokens 2.. of each option in ``rest``, continuing prompt row ``rows[r]``."""
    import torch

    device = prompt_mask.device
    cache.batch_select_indices(rows)  # option r continues prompt row rows[r]: its cache rows, repeated
    width = max(len(t) for t in rest)
    ids = torch.full((len(rest), width), pad_id, dtype=torch.long)
    opt_mask = torch.zeros((len(rest), width), dtype=torch.long)
    keep = torch.zeros((len(rest), width), dtype=torch.bool)  # positions that predict a later option token
    targets = []
    for r, toks in enumerate(rest):
        ids[r, : len(toks)] = torch.tensor(toks)
        opt_mask[r, : len(toks)] = 1
        keep[r, : len(toks) - 1] = True
        targets += toks[1:]
    full_mask = torch.cat([prompt_mask[rows], opt_mask.to(device)], dim=1)
    positions = prompt_mask[rows].sum(-1, keepdim=True) + torch.arange(width, device=device)[None, :]
    logits = head_on(
        model,
        keep,
        input_ids=ids.to(device),
        attention_mask=full_mask,
        position_ids=positions,
        **{cache_kwarg(model): cache},
        use_cache=True,
    )
    logp = torch.log_softmax(logits.float(), dim=-1)
    picked = logp.gather(-1, torch.tensor(targets, device=logp.device)[:, None])[:, 0].cpu()
    counts = keep.sum(-1).tolist()
    out, at = [], 0
    for c in counts:
        out.append(float(picked[at : at + c].sum()))
        at += c
    return out


def head_on(model, keep, **inputs):
    """``[N, V]`` logits at ``keep``'s positions (row-major), the LM head running on those only.

    Prompt tuning prepends virtual tokens to every row; the selector skips them (``keep`` covers the real ones).
    """
    from sftlab.train.fused_ce import HeadSelector

    try:
        selector = HeadSelector(model, capture=False)
    except ValueError:  # no separate output layer to hook: full logits, then the positions
        logits = model(**inputs).logits
        return logits[:, logits.size(1) - keep.size(1) :][keep.to(logits.device)]
    with selector.select(keep):
        logits = model(**inputs).logits
    return logits.reshape(-1, logits.shape[-1])
