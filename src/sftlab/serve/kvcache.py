"""A KV cache for sequences of different lengths that join and leave a running batch.

Rows are right-aligned on one time axis (left padding, the layout ``generate`` uses), and a
2D mask says which slots hold real tokens::

    row 0: [pad pad  k   k   k ]    mask [0 0 1 1 1]
    row 1: [ k   k   k   k   k ]    mask [1 1 1 1 1]

A new row joins by padding the narrower side on the left; a row leaves by indexing the batch
dimension, after which columns that are padding in every row are cut off the left so a long
request that left does not keep the others' attention wide. Sliding-window layers hold only the
last ``window - 1`` slots of the same axis, so the same padding and cutting works for them as
long as their ``cumulative_length`` stays the width of the axis.

Only transformers' ``DynamicLayer`` and ``DynamicSlidingWindowLayer`` are reshaped this way;
:func:`can_reshape` tells the batch when a model's cache is something else (linear attention,
quantised, offloaded), and the batch then runs one sequence at a time.
"""

from __future__ import annotations

from typing import Any


def can_reshape(cache: Any) -> bool:
    """Whether rows of ``cache`` can be added, removed and trimmed here (see the module docstring)."""
    from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

    layers = getattr(cache, "layers", None)
    if not layers or getattr(cache, "offloading", False):
        return False
    return all(
        type(layer) in (DynamicLayer, DynamicSlidingWindowLayer)
        and layer.is_initialized
        and not getattr(layer, "record_past", False)
        for layer in layers
    )


class PaddedCache:
    """A transformers cache over right-aligned rows plus the mask of real slots (``[rows, width]``)."""

    def __init__(self, cache: Any, mask):
        self.cache = cache
        self.mask = mask

    @property
    def width(self) -> int:
        return self.mask.shape[1]

    def grow(self):
        """The mask for a decode step: one more real slot per row (the token being fed now)."""
        import torch

        self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=1)
        return self.mask

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` (in this order), then cut the padding every remaining row has on the left."""
        import torch

        index = torch.tensor(rows, dtype=torch.long, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask = self.mask.index_select(0, index)
        self._trim()

    def extend(self, other: PaddedCache) -> None:
        """Append ``other``'s rows below these, padding whichever is narrower on the left."""
        import torch

        width = max(self.width, other.width)
        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            # Full layers hold `width` slots, sliding ones min(width, window - 1): in both cases the longer one.
            slots = max(mine.keys.shape[-2], theirs.keys.shape[-2])
            mine.keys = torch.cat([_pad_left(mine.keys, slots), _pad_left(theirs.keys, slots)])
            mine.values = torch.cat([_pad_left(mine.values, slots), _pad_left(theirs.values, slots)])
            if hasattr(mine, "cumulative_length"):
                mine.cumulative_length = width
        self.mask = torch.cat([_pad_mask(self.mask, width), _pad_mask(other.mask, width)])

    def _trim(self) -> None:
        padding = self.mask.sum(0) == 0
        n = int(padding.long().cumprod(0).sum())  # leading columns that are padding in every row
        if n == 0:
            return
        width = self.width - n
        for layer in self.cache.layers:
            slots = min(layer.keys.shape[-2], width)
            layer.keys = layer.keys[..., -slots:, :]
            layer.values = layer.values[..., -slots:, :]
            if hasattr(layer, "cumulative_length"):
                layer.cumulative_length = width
        self.mask = self.mask[:, n:]


def _pad_left(states, slots: int):
    """``[rows, heads, t, dim]`` → ``[rows, heads, slots, dim]`` with zeros in front (masked, never read)."""
    import torch.nn.functional as F

    missing = slots - states.shape[-2]
    return F.pad(states, (0, 0, missing, 0)) if missing else states


def _pad_mask(mask, width: int):
    import torch.nn.functional as F

    missing = width - mask.shape[1]
    return F.pad(mask, (missing, 0)) if missing else mask
