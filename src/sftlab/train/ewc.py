"""Elastic weight consolidation: a quadratic pull towards the starting weights, strongest where they matter.

Before training we estimate the diagonal Fisher information ``F`` of every
trainable parameter on a few batches of *general* data (the squared gradient of
the loss, averaged), and keep a copy ``θ₀`` of the weights. During training the
loss gains ``λ · Σ F · (θ - θ₀)²``: parameters that general ability depends on
move less, the rest are free to fit the new task.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from sftlab.train.loss import token_loss_sum


class Ewc:
    """The penalty term, bound to the parameter tensors themselves (so DDP wrapping does not matter)."""

    def __init__(self, params: list[torch.nn.Parameter], fisher: list[torch.Tensor], lam: float):
        self.params = params
        self.fisher = fisher
        self.anchor = [p.detach().clone() for p in params]
        self.lam = lam

    def penalty(self, model=None) -> torch.Tensor:
        """``λ · Σ F · (θ - θ₀)²`` over the trainable parameters."""
        total = torch.zeros((), device=self.params[0].device, dtype=torch.float32)
        for p, f, a in zip(self.params, self.fisher, self.anchor, strict=True):
            total = total + (f * (p.float() - a.float()) ** 2).sum()
        return self.lam * total

    def drift(self) -> float:
        """Fisher-weighted squared distance from the anchor (the penalty without λ), for logs and tests."""
        with torch.no_grad():
            return float(
                sum(
                    (f * (p.float() - a.float()) ** 2).sum()
                    for p, f, a in zip(self.params, self.fisher, self.anchor, strict=True)
                )
            )


def estimate_fisher(model, batches: Iterable[dict], max_batches: int = 8) -> tuple[list, list[torch.Tensor]]:
    """Diagonal (empirical) Fisher of the trainable parameters: mean over batches of squared gradients.

    Normalised so its mean is 1, which makes λ comparable across models and data sizes.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    fisher = [torch.zeros_like(p, dtype=torch.float32) for p in params]
    was_training = model.training
    model.eval()  # no dropout: the Fisher of the model as it is
    n = 0
    for batch in batches:
        if n >= max_batches:
            break
        device = params[0].device
        batch = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        labels = batch.pop("labels")
        batch.pop("loss_weights", None)
        model.zero_grad(set_to_none=True)
        loss_sum, count = token_loss_sum(model(**batch).logits, labels)
        (loss_sum / count.clamp(min=1)).backward()
        for f, p in zip(fisher, params, strict=True):
            if p.grad is not None:
                f += p.grad.detach().float() ** 2
        n += 1
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    if n == 0:
        return params, fisher
    mean = sum(f.sum() for f in fisher) / max(1, sum(f.numel() for f in fisher))
    scale = 1.0 / mean.clamp(min=1e-30)
    return params, [f * scale for f in fisher]


def build_ewc(model, batches: Iterable[dict], lam: float, max_batches: int = 8) -> Ewc:
    """Estimate the Fisher on ``batches`` and anchor at the current weights."""
    params, fisher = estimate_fisher(model, batches, max_batches)
    return Ewc(params, fisher, lam)
