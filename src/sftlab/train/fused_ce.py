"""Cross-entropy straight from hidden states: only trained positions, in chunks, never the full logits.

A causal LM computes ``logits = hidden @ W.T`` for every position of every row —
``B × L × V`` floats (4 × 2048 × 150k × 4 bytes ≈ 4.9 GB in fp32) — and SFT then
throws most of them away: only assistant tokens carry a label (14% of the
quickstart's tokens). Two things fix that:

1. :func:`trained_positions` picks the positions whose *next* token is trained,
   and :class:`HeadSelector` hooks the model's output layer so that it sees only
   those hidden states (the rest of the model runs unchanged, through DDP/FSDP
   wrappers, LoRA layers and all).
2. :func:`linear_cross_entropy` turns the selected hidden states into the summed
   (weighted) loss chunk by chunk. The gradient of a summed cross-entropy is known
   in closed form (``softmax − onehot``), so each chunk's gradient is computed in
   the forward pass while its logits are still in cache and the logits are
   dropped; backward only scales the stored gradients by the incoming scalar.

Peak extra memory is one chunk of logits plus ``grad_hidden`` (N × H) instead of
B × L × V. The result equals ``F.cross_entropy(hidden @ W.T, targets, reduction="sum")``
to float rounding, which the tests check for values and gradients.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from sftlab.render.labels import IGNORE_INDEX

DEFAULT_CHUNK = 1024
"""Rows of logits alive at once: 1024 × 150k vocab × 4 bytes ≈ 600 MB worst case, 200 MB at 49k."""


def trained_positions(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(keep, targets)``: a ``[B, L]`` mask of positions whose next token is trained, and those tokens (row-major).

    >>> keep, targets = trained_positions(torch.tensor([[7, -100, 5, 6]]))
    >>> keep.tolist(), targets.tolist()
    ([[False, True, True, False]], [5, 6])
    """
    shifted = labels[:, 1:]
    trained = shifted != IGNORE_INDEX
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = trained
    return keep, shifted[trained]


class _LinearCrossEntropy(torch.autograd.Function):
    """Σ_i w_i · CE(h_i · Wᵀ + b, y_i), gradients computed chunk by chunk during the forward."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, token_weights, chunk):
        need_h = hidden.requires_grad
        need_w = weight.requires_grad
        need_b = bias is not None and bias.requires_grad
        track = need_h or need_w or need_b  # (autograd runs forward with grad mode off)
        ctx.weight_dtype = weight.dtype
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if need_w else None
        grad_b = torch.zeros_like(bias, dtype=torch.float32) if need_b else None
        for start in range(0, hidden.size(0), chunk):
            h = hidden[start : start + chunk]
            y = targets[start : start + chunk]
            logits = (h @ weight.t()).float()
            if bias is not None:
                logits += bias.float()
            lse = torch.logsumexp(logits, dim=-1)
            picked = logits.gather(1, y[:, None]).squeeze(1)
            w = None if token_weights is None else token_weights[start : start + chunk].float()
            ce = lse - picked
            total += (ce * w).sum() if w is not None else ce.sum()
            if not track:
                continue
            # d(Σ w·ce)/d logits = w · (softmax − onehot), built in place over the logits buffer
            g = logits.sub_(lse[:, None]).exp_()
            g[torch.arange(g.size(0), device=g.device), y] -= 1.0
            if w is not None:
                g *= w[:, None]
            if need_h:
                grad_h[start : start + chunk] = (g.to(weight.dtype) @ weight).to(hidden.dtype)
            if need_w:
                grad_w += g.t() @ h.float()
            if need_b:
                grad_b += g.sum(0)
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        return total

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w, grad_b = ctx.saved_tensors
        scale = grad_out.float()
        out_h = (grad_h * scale.to(grad_h.dtype)) if grad_h is not None else None
        out_w = (grad_w * scale).to(ctx.weight_dtype) if grad_w is not None else None
        out_b = (grad_b * scale) if grad_b is not None else None
        return out_h, out_w, out_b, None, None, None


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    token_weights: torch.Tensor | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> torch.Tensor:
    """Summed (weighted) cross-entropy of ``hidden @ weight.T + bias`` against ``targets`` (fp32 accumulation).

    ``hidden`` is ``[N, H]``, ``weight`` ``[V, H]``, ``targets`` ``[N]``; every target must be a real
    token id (select trained positions first with :func:`trained_positions`).
    """
    if hidden.size(0) == 0:
        return hidden.sum() * 0.0 + weight.sum() * 0.0  # keeps the graph (DDP expects every parameter used)
    return _LinearCrossEntropy.apply(hidden, weight, bias, targets, token_weights, chunk)


@torch.no_grad()
def token_losses(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    bias=None,
    chunk: int = DEFAULT_CHUNK,
) -> torch.Tensor:
    """Per-token cross-entropy ``[N]`` (fp32) without gradients, chunk by chunk (evaluation)."""
    out = []
    for start in range(0, hidden.size(0), chunk):
        logits = (hidden[start : start + chunk] @ weight.t()).float()
        if bias is not None:
            logits += bias.float()
        y = targets[start : start + chunk]
        out.append(torch.logsumexp(logits, dim=-1) - logits.gather(1, y[:, None]).squeeze(1))
    return torch.cat(out) if out else hidden.new_zeros(0, dtype=torch.float32)


class HeadSelector:
    """Makes a causal LM's output layer see only the selected hidden states.

    While active, a forward pre-hook on ``model.get_output_embeddings()`` replaces its
    input ``[B, L, H]`` by ``hidden[keep]`` (``[N, H]``). With ``capture=True`` it stores
    those hidden states in :attr:`hidden` and hands the layer an empty slice, so that
    :func:`linear_cross_entropy` can compute the loss without any full logits; with
    ``capture=False`` (sharded weights, which only exist inside the layer's own forward)
    the layer computes the ``[N, V]`` logits itself.
    """

    def __init__(self, model, *, capture: bool):
        self.head = output_layer(model)
        self.capture = capture
        self.keep: torch.Tensor | None = None
        self.hidden: torch.Tensor | None = None

    def _pre_hook(self, module, args):
        (states, *rest) = args
        if self.keep is None:
            return None
        keep = self.keep.to(states.device)
        extra = states.size(1) - keep.size(1)
        if extra > 0:  # prompt tuning prepends its virtual tokens
            states = states[:, extra:]
        selected = states[keep]
        if self.capture:
            self.hidden = selected
            return (selected[:0], *rest)
        return (selected, *rest)

    @contextmanager
    def select(self, keep: torch.Tensor):
        """Within the block, the output layer sees only ``keep``'s positions."""
        self.keep, self.hidden = keep, None
        handle = self.head.register_forward_pre_hook(self._pre_hook)
        try:
            yield self
        finally:
            handle.remove()
            self.keep = None


def output_layer(model):
    """The ``nn.Linear`` producing logits, through peft and accelerate wrappers."""
    inner = model
    for _ in range(4):
        if hasattr(inner, "get_output_embeddings") and inner.get_output_embeddings() is not None:
            return inner.get_output_embeddings()
        inner = (
            getattr(inner, "module", None)
            or getattr(inner, "base_model", None)
            or getattr(inner, "model", None)
        )
        if inner is None:
            break
    raise ValueError(f"{type(model).__name__} has no output embeddings to compute the loss from")
