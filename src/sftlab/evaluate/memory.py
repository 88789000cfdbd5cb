"""Whether several copies of a loaded model fit in memory at once (for the interleaved latency pass)."""

from __future__ import annotations

SHARE = 0.5
"""Share of the free memory the extra models may take; the rest is for activations, caches and the OS."""


def model_bytes(model) -> int:
    """Bytes held by the model's parameters and buffers."""
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def fits_together(model, count: int) -> bool:
    """Whether ``count - 1`` more models of this size fit next to the one already loaded.

    Free memory is the GPU's when the model is on one, else the machine's available RAM.
    """
    import torch

    extra = model_bytes(model) * max(count - 1, 0)
    if extra == 0:
        return True
    device = next(model.parameters()).device
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
    else:
        import psutil

        free = psutil.virtual_memory().available
    return extra <= SHARE * free
