"""Answer losses of token sequences, packed the way training packs: no padding, logits for scored tokens only.

A *sequence* is ``(ids, trained)``: ``trained[p]`` marks a token the model is
scored on (an answer token, its end-of-turn included). :func:`packed_losses`
lays sequences back to back in rows of ``max_length`` (best-fit decreasing,
:func:`~sftlab.render.pack.pack_samples`), restarts ``position_ids`` at each
sequence and gives each its own causal block of the attention mask, exactly as
:class:`~sftlab.render.collate.PackedCollator` does for training::

    row      p p p a a | q q b b b      (p, q prompt; a, b answer tokens)
    pos      0 1 2 3 4 | 0 1 2 3 4
    scored         ^ ^         ^ ^ ^    only these positions reach the output layer

The output layer sees only the hidden states whose next token is scored
(:class:`~sftlab.train.fused_ce.HeadSelector`), so a 1,000-token prompt costs no
``1000 × vocabulary`` logits. :func:`padded_losses` is the path for models
whose forward takes no ``position_ids`` (and the one used before packing).
Each sequence's result is ``(sum of NLL, scored tokens)``; the caller divides,
so a record with several sequences pools its tokens.
"""

from __future__ import annotations

import math

from sftlab.render.labels import IGNORE_INDEX
from sftlab.render.pack import pack_samples
from sftlab.utils.progress import track

Sequence_ = tuple[list[int], list[bool]]


def _forward_kwargs(model) -> set[str]:
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return set(inspect.signature(base.forward).parameters)


def supports_packing(model) -> bool:
    """Packing needs ``position_ids`` in the forward and a plain output layer to hook."""
    import inspect

    from sftlab.train.fused_ce import output_layer

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if "position_ids" not in inspect.signature(base.forward).parameters:
        return False
    try:
        output_layer(model)
    except ValueError:
        return False
    return True


def _plain_head(model) -> bool:
    from sftlab.train.trainer import PLAIN_HEAD_MODELS

    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) in PLAIN_HEAD_MODELS and not getattr(
        config, "final_logit_softcapping", None
    )


def _row_tensors(seqs: list[Sequence_], bins: list[list[int]], pad_id: int):
    """``input_ids``, ``position_ids``, per-token sequence index (``-1`` = padding) and labels of one batch of rows."""
    import torch

    width = max(sum(len(seqs[i][0]) for i in row) for row in bins)
    shape = (len(bins), width)
    ids = torch.full(shape, pad_id, dtype=torch.long)
    pos = torch.zeros(shape, dtype=torch.long)
    owner = torch.full(shape, -1, dtype=torch.long)
    labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
    for r, row in enumerate(bins):
        at = 0
        for i in row:
            seq, trained = seqs[i]
            n = len(seq)
            t = torch.tensor(seq)
            ids[r, at : at + n] = t
            pos[r, at : at + n] = torch.arange(n)
            owner[r, at : at + n] = i
            mask = torch.tensor(trained, dtype=torch.bool)
            mask[0] = False  # the first token has nothing before it in its own sequence
            labels[r, at : at + n] = torch.where(mask, t, IGNORE_INDEX)
            at += n
        if at < width:  # padding: its own block, so no row of the mask is empty
            pos[r, at:] = torch.arange(width - at)
    return ids, pos, owner, labels


def _attention_mask(model, owner):
    from sftlab.render.collate import block_causal_mask

    seq_ids = owner.clone()
    seq_ids[seq_ids < 0] = -2  # padding attends to padding only
    eager = getattr(getattr(model, "config", None), "_attn_implementation", "sdpa") == "eager"
    dtype = next(model.parameters()).dtype
    return block_causal_mask(seq_ids, "eager" if eager else "sdpa", dtype)


def packed_losses(
    model,
    seqs: list[Sequence_],
    *,
    max_length: int,
    rows: int = 8,
    pad_id: int = 0,
    label: str = "perplexity",
) -> list[tuple[float, int]]:
    """``(sum of NLL over scored tokens, number of scored tokens)`` per sequence, packed into rows.

    A sequence longer than ``max_length`` is an error of the caller (truncate first).
    """
    import torch

    from sftlab.train.fused_ce import HeadSelector, token_losses, trained_positions

    device = next(model.parameters()).device
    sums = torch.zeros(len(seqs), dtype=torch.float64)
    counts = torch.zeros(len(seqs), dtype=torch.long)
    live = [i for i, (_, trained) in enumerate(seqs) if any(trained[1:])]
    bins = [[live[k] for k in b] for b in pack_samples([len(seqs[i][0]) for i in live], max_length)]
    selector = HeadSelector(model, capture=_plain_head(model))
    head = selector.head
    model.eval()
    with torch.inference_mode():
        for start in track(range(0, len(bins), rows), label, total=math.ceil(len(bins) / rows)):
            ids, pos, owner, labels = _row_tensors(seqs, bins[start : start + rows], pad_id)
            keep, targets = trained_positions(labels)
            mask = _attention_mask(model, owner)
            with selector.select(keep):
                out = model(
                    input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=pos.to(device)
                )
            if selector.capture:
                nll = token_losses(selector.hidden, head.weight, targets.to(device), bias=head.bias)
            else:
                logits = out.logits.reshape(-1, out.logits.shape[-1]).float()
                nll = torch.logsumexp(logits, -1) - logits.gather(1, targets.to(device)[:, None]).squeeze(1)
            which = owner[keep]
            sums.index_add_(0, which, nll.double().cpu())
            counts.index_add_(0, which, torch.ones_like(which))
    return [(float(s), int(c)) for s, c in zip(sums.tolist(), counts.tolist(), strict=True)]


def padded_losses(model, seqs: list[Sequence_], *, batch_size: int = 8, pad_id: int = 0):
    """``(sum of NLL, scored tokens)`` per ``(ids, trained)`` sequence, in right-padded batches (``packed: false``).

    Sequences are sorted by length (less padding), right-padded and masked; only
    the logits from the first scored position on are computed (``logits_to_keep``).
    Works with any causal LM whose forward takes ``input_ids`` and ``attention_mask``.
    """
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    can_trim = "logits_to_keep" in _forward_kwargs(model)
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i][0]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    result: list[tuple[float, int]] = [(0.0, 0)] * len(seqs)
    model.eval()
    with torch.inference_mode():
        for batch in track(batches, "perplexity"):
            width = max(len(seqs[i][0]) for i in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            targets = torch.full((len(batch), width), -100, dtype=torch.long)
            first = width
            for row, i in enumerate(batch):
                seq, trained = seqs[i]
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
                # position p predicts token p + 1: targets are shifted left by one
                scored = [p for p in range(1, len(seq)) if trained[p]]
                if scored:
                    targets[row, [p - 1 for p in scored]] = torch.tensor([seq[p] for p in scored])
                    first = min(first, scored[0] - 1)
            first = min(first, width - 1)
            kwargs = {"logits_to_keep": width - first} if can_trim else {}
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs).logits
            window = targets[:, width - logits.shape[1] :].to(device)
            nll = F.cross_entropy(logits.float().transpose(1, 2), window, ignore_index=-100, reduction="none")
            counts = (window != -100).sum(1)
            for row, (value, n) in enumerate(zip(nll.sum(1).tolist(), counts.tolist(), strict=True)):
                result[batch[row]] = (value, n)
    return result
