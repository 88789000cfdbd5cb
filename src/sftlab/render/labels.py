"""Masks to labels, in exactly one place, and the token-mean loss that makes gradient accumulation exact.

Labels are *unshifted* (position ``t`` holds the id at ``t``), as Hugging Face
causal LMs expect; the model (or :func:`token_mean_loss`) shifts them.

>>> labels_from_weights([5, 6, 7, 8], [0.0, 0.0, 1.0, 1.0])
[-100, -100, 7, 8]
"""

from __future__ import annotations

from collections.abc import Sequence

IGNORE_INDEX = -100
"""Label of a token that carries no loss (PyTorch's ``cross_entropy`` default ``ignore_index``)."""


def labels_from_weights(input_ids: Sequence[int], weights: Sequence[float]) -> list[int]:
    """The label of each token: its id where its weight is > 0, else :data:`IGNORE_INDEX`.

    Labels never come from ``input_ids != pad_token_id``: many tokenizers use the EOS
    token as padding, and the EOS token must be trained.
    """
    if len(input_ids) != len(weights):
        raise ValueError(f"{len(input_ids)} ids but {len(weights)} weights")
    return [tok if w > 0 else IGNORE_INDEX for tok, w in zip(input_ids, weights, strict=True)]


def count_trained(labels) -> int:
    """Tokens that carry loss after the causal shift (the first position never does)."""
    import torch

    labels = torch.as_tensor(labels)
    return int((labels[..., 1:] != IGNORE_INDEX).sum())


def token_mean_loss(logits, labels, weights=None, num_items: int | None = None):
    """Sum of (weighted) next-token cross-entropy over trained tokens, divided by ``num_items``.

    ``num_items`` is the number of trained tokens in the *whole* accumulated batch
    (:func:`count_trained` summed over the micro-batches); then the sum of the
    micro-batch losses equals the loss of one big batch, which a per-micro-batch
    mean does not. Without it the mean is over this batch's trained tokens.
    ``weights`` (same shape as ``labels``) scale each token's term; the divisor is a
    count of tokens, not a sum of weights, so a turn of weight 2 counts twice.

    Shapes: logits ``[B, T, V]``, labels ``[B, T]`` (unshifted), weights ``[B, T]``.
    """
    import torch
    import torch.nn.functional as F

    logits = logits[:, :-1, :].float()
    target = labels[:, 1:]
    per_token = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none"
    )
    if weights is not None:
        per_token = per_token * weights[:, 1:].reshape(-1).to(per_token.dtype)
    if num_items is None:
        num_items = int((target != IGNORE_INDEX).sum())
    return per_token.sum() / torch.clamp(torch.as_tensor(num_items, dtype=per_token.dtype), min=1)
