"""Continuous batching: the sequences being generated, one forward pass per step for all of them.

The worker alternates two moves, so new requests never wait for a whole batch to finish::

    admit:  prefill the new prompts together (left-padded) → their first tokens → join the cache
    step:   drop sequences whose client left or whose time is up, feed every sequence its last
            token, pick the next ones, drop the sequences that are now complete

A complete sequence leaves at the step that completed it and its answer goes out at once.

Each prompt is prefilled exactly as ``generate`` prefills it (same positions, same mask), and a
decode step attends over the row's own slots only, so greedy output equals ``generate`` on the
request alone up to the float rounding that any padded batch has.
"""

from __future__ import annotations

import inspect
import time
from collections import Counter
from dataclasses import dataclass, field

from sftlab.models.kv_cache import cache_kwarg, cache_of
from sftlab.serve.kvcache import PaddedCache, can_reshape
from sftlab.serve.logits import pick_tokens
from sftlab.serve.sequence import Sequence


@dataclass
class BatchStats:
    """Counters for ``/health``, tests and benchmarks (read from other threads; plain ints)."""

    prefills: int = 0
    """Forward passes over new prompts (one per group of requests admitted together)."""
    steps: int = 0
    """Decode steps: one forward pass that gives every active sequence its next token."""
    largest_batch: int = 0
    """Most sequences ever decoded in one step."""
    tokens: int = 0
    """Tokens generated, over all sequences."""
    finished: Counter = field(default_factory=Counter)
    """Sequences that left the batch, by reason (``sequence.REASONS``, plus ``error``)."""


class DecodeBatch:
    """Owns the active :class:`Sequence` objects and their :class:`PaddedCache`; not thread-safe."""

    def __init__(self, model, pad_id: int, *, repetition_penalty: float | None = None):
        self.model = model
        self.pad_id = pad_id
        self.repetition_penalty = repetition_penalty
        self.seqs: list[Sequence] = []
        self.cache: PaddedCache | None = None
        self.stats = BatchStats()
        self.reshapable: bool | None = None
        """Whether the model's cache can take and lose rows (:meth:`probe`); otherwise one sequence at a time."""
        params = inspect.signature(model.forward).parameters
        self._cache_arg = cache_kwarg(model)
        self._keep_last = "logits_to_keep" in params
        # Left-padded rows need their own positions; a model that takes none runs one sequence at a time.
        self._positions = "position_ids" in params

    def probe(self) -> None:
        """Learn whether the model's cache can be reshaped, with a one-token forward pass (at start-up)."""
        import torch

        one = torch.tensor([[self.pad_id]], dtype=torch.long, device=self._device())
        try:
            _, cache = self._forward(one, torch.ones_like(one), torch.zeros_like(one), None)
        except Exception:  # a model that cannot run fails its requests later, with their own error
            self.reshapable = False
            return
        self.reshapable = self._positions and can_reshape(cache)

    def free_slots(self, max_batch: int) -> int:
        """How many new sequences may join now; a cache that cannot be reshaped runs one sequence at a time."""
        if not self.reshapable:
            return 0 if self.seqs else 1
        return max(0, max_batch - len(self.seqs))

    def admit(self, seqs: list[Sequence]) -> list[Sequence]:
        """Prefill ``seqs``, pick their first tokens and add them; returns the sequences that left."""
        import torch

        width = max(len(s.job.prompt_ids) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            n = len(seq.job.prompt_ids)
            ids[row, width - n :] = torch.tensor(seq.job.prompt_ids, dtype=torch.long)
            mask[row, width - n :] = 1
        device = self._device()
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)  # as generate() numbers a left-padded row
        logits, cache = self._forward(ids, mask, positions, None)
        self._push(seqs, logits)  # before they join: a failure here leaves the running batch as it was
        group = PaddedCache(cache, mask)
        if self.cache is None:
            self.cache = group
        else:
            self.cache.extend(group)
        self.seqs.extend(seqs)
        self.stats.prefills += 1
        return self._drop_finished()

    def step(self) -> list[Sequence]:
        """Drop cancelled and timed-out sequences, then generate one token for each of the others."""
        import torch

        now = time.monotonic()
        for seq in self.seqs:
            seq.check(now)
        left = self._drop_finished()
        if not self.seqs:
            return left
        device = self._device()
        ids = torch.tensor([[seq.tokens[-1]] for seq in self.seqs], dtype=torch.long, device=device)
        mask = self.cache.grow()
        positions = mask.sum(dim=1, keepdim=True) - 1
        logits, _ = self._forward(ids, mask, positions, self.cache.cache)
        self.stats.steps += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(self.seqs))
        self._push(self.seqs, logits)
        return left + self._drop_finished()

    def clear(self) -> list[Sequence]:
        """Remove every sequence (after a failed forward pass, or at shutdown) and return them."""
        seqs, self.seqs, self.cache = self.seqs, [], None
        return seqs

    def _push(self, seqs: list[Sequence], logits) -> None:
        for seq, token in zip(seqs, pick_tokens(logits, seqs, self.repetition_penalty), strict=True):
            seq.push(token)
        self.stats.tokens += len(seqs)

    def _drop_finished(self) -> list[Sequence]:
        keep = [row for row, seq in enumerate(self.seqs) if not seq.done]
        if len(keep) == len(self.seqs):
            return []
        left = [seq for seq in self.seqs if seq.done]
        for seq in left:
            self.stats.finished[seq.reason] += 1
        self.seqs = [self.seqs[row] for row in keep]
        if not self.seqs:
            self.cache = None
        else:
            self.cache.keep(keep)
        return left

    def _forward(self, ids, mask, positions, cache):
        """Logits of each row's last position (float32, as generate() takes them) and the updated cache."""
        kwargs = {self._cache_arg: cache, "use_cache": True}
        if self._keep_last:
            kwargs["logits_to_keep"] = 1
        if self._positions:
            kwargs["position_ids"] = positions
        out = self.model(input_ids=ids, attention_mask=mask, **kwargs)
        return out.logits[:, -1, :].float(), cache_of(out)

    def _device(self):
        return next(self.model.parameters()).device
