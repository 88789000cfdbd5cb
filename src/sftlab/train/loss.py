"""The token-mean causal-LM loss, normalised over the whole accumulated batch.

A per-micro-batch mean followed by averaging over micro-batches weights a token
of a short sample more than a token of a long one (the 2024 gradient-accumulation
bug). We sum the token losses of a micro-batch and divide by the number of
trained tokens of the *whole* optimizer step — every micro-batch on every
process — so that batch 8 × accum 1, batch 1 × accum 8 and 2 processes × batch 4
produce the same gradient::

    step loss = Σ_microbatches Σ_tokens w·ce  /  N_trained(all micro-batches, all processes)

``IGNORE_INDEX`` labels carry no loss and are not counted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
"""Label of a token that is not trained (prompt, padding, packing boundaries)."""


def count_trained_tokens(labels: torch.Tensor) -> torch.Tensor:
    """Tokens that are a prediction target after the causal shift (position 0 never is).

    >>> count_trained_tokens(torch.tensor([[5, 6, -100, 7]]))
    tensor(2)
    """
    return (labels[..., 1:] != IGNORE_INDEX).sum()


def token_loss_sum(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of (weighted) next-token cross-entropies and the number of trained tokens.

    ``weights`` (same shape as ``labels``) scales each target token's loss; the
    count is of tokens, not of weights, so a weight of 2 doubles that token's pull.
    """
    shift_logits = logits[..., :-1, :].float()
    shift_labels = labels[..., 1:]
    per_token = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.reshape(-1).to(shift_logits.device),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    )
    if weights is not None:
        per_token = per_token * weights[..., 1:].reshape(-1).to(per_token)
    return per_token.sum(), (shift_labels != IGNORE_INDEX).sum()
