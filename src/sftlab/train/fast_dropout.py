"""A CPU dropout that draws 16 random bits per element: four elements per 64-bit draw.

PyTorch's CPU dropout draws one Bernoulli sample per element from a sequential
generator; with LoRA on every linear layer of a small model that is 210 dropout
calls per step and 18% of a CPU training step (profiled on SmolLM2-135M, 256 tokens).
Drawing 64 bits at a time and comparing 16-bit slices with a threshold is about 4× faster
with the same expected behaviour: ``p`` is rounded to a multiple of 1/65536 and kept
elements are scaled by ``1 / (1 - p)`` so the expectation is unchanged. On CUDA the fused
kernel is already fast and is used as is.
"""

from __future__ import annotations

import torch
from torch import nn

_LEVELS = 65536


class FastDropout(nn.Dropout):
    """Drop-in for ``nn.Dropout`` (same ``p``, same train/eval behaviour)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        threshold = round(self.p * _LEVELS)
        if not self.training or threshold == 0:
            return x
        if x.device.type != "cpu" or threshold >= _LEVELS:
            return nn.functional.dropout(x, self.p, True)
        n = x.numel()
        bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), 2**63 - 1)
        keep = bits.view(torch.int16)[:n].view(x.shape) >= threshold - _LEVELS // 2
        # x * keep saves the 1-byte mask for backward (not a float copy); scaling in place adds nothing
        return (x * keep).mul_(_LEVELS / (_LEVELS - threshold))


def use_fast_dropout(model: nn.Module) -> int:
    """Swap every LoRA dropout of a peft model for :class:`FastDropout`; returns how many were swapped."""
    swapped = 0
    for module in model.modules():
        drops = getattr(module, "lora_dropout", None)
        if not isinstance(drops, nn.ModuleDict):
            continue
        for name, drop in list(drops.items()):
            if type(drop) is nn.Dropout and drop.p > 0:
                drops[name] = FastDropout(drop.p)
                swapped += 1
    return swapped
