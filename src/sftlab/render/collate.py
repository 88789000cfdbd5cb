"""Collators: lists of sample dicts → batch tensors, padded or packed.

Sample dicts are ``{"input_ids": [...], "labels": [...], "weights": [...]?}``
(see :meth:`RenderedSample.features`). Labels are unshifted; the model shifts them.

Packing (:class:`PackedCollator`) puts several samples in one row and makes sure no
token sees another sample. Rows come packed over the whole epoch (features of the
form ``{"pack": [sample, ...]}``, see :func:`sftlab.render.pack.pack_samples`), or, given
plain samples, the collator packs the batch itself::

    row     a a a b b p      (p = padding)
    pos     0 1 2 0 1 0      position ids restart per sample
    mask    a: causal over a only; b: causal over b only; p: itself only
    labels  the first token of each sample is IGNORE_INDEX, so that b's first token
            is never "predicted" from a's last one
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

from sftlab.render.labels import IGNORE_INDEX
from sftlab.render.pack import pack_samples


def _round_up(n: int, multiple: int | None) -> int:
    return n if not multiple else -(-n // multiple) * multiple


def _weights(sample: dict[str, Any]) -> list[float]:
    w = sample.get("weights")
    return list(w) if w is not None else [1.0] * len(sample["input_ids"])


class PaddingCollator:
    """Right-pads a batch to its longest sample: ``input_ids``, ``attention_mask``, ``labels``
    and, when any sample carries weights, ``loss_weights``."""

    def __init__(self, pad_token_id: int, *, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = _round_up(max(len(s["input_ids"]) for s in samples), self.pad_to_multiple_of)
        ids = torch.full((len(samples), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(samples), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(samples), width), dtype=torch.long)
        weighted = any(s.get("weights") is not None for s in samples)
        weights = torch.zeros((len(samples), width), dtype=torch.float32)
        for r, s in enumerate(samples):
            n = len(s["input_ids"])
            ids[r, :n] = torch.tensor(s["input_ids"])
            labels[r, :n] = torch.tensor(s["labels"])
            mask[r, :n] = 1
            weights[r, :n] = torch.tensor(_weights(s))
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        if weighted:
            batch["loss_weights"] = weights
        return batch


class PackedCollator:
    """Packs a batch's samples into rows of ``max_length`` (best-fit decreasing).

    ``attention`` picks how separation is enforced:

    - ``sdpa``: a 4D boolean block-diagonal causal mask ``[B, 1, L, L]`` (True = may attend),
      which transformers passes to SDPA unchanged;
    - ``eager``: the same as an additive float mask (0 or the dtype's minimum);
    - ``flash``: padding-free, one row of every sample back to back with ``position_ids``
      and ``cu_seq_lens_q/k`` / ``max_length_q/k`` (flash-attention varlen kernels, see
      :func:`varlen_inputs`);
    - ``flex``: the same padding-free row with ``position_ids`` only: transformers finds the
      samples where positions restart and builds FlexAttention's sparse block mask.

    ``sdpa`` and ``eager`` are the CPU path; on a GPU the mask would be ``L × L`` per row
    (:mod:`sftlab.train.attention` picks ``flash`` or ``flex`` there). Position ids restart
    at 0 for each sample in every mode.
    """

    def __init__(
        self,
        max_length: int,
        pad_token_id: int,
        *,
        attention: Literal["sdpa", "eager", "flash", "flex"] = "sdpa",
        mask_dtype=None,
        pad_to_multiple_of: int | None = None,
    ):
        self.max_length = max_length
        self.pad_token_id = pad_token_id
        self.attention = attention
        self.mask_dtype = mask_dtype
        self.pad_to_multiple_of = pad_to_multiple_of
        self.last_padding_share = 0.0
        """Share of padding tokens in the last batch (for logging)."""

    @property
    def padding_free(self) -> bool:
        """One row holding every sample of the batch, no padding and no mask tensor."""
        return self.attention in ("flash", "flex")

    def rows(self, samples: list[dict[str, Any]]) -> list[list[int]]:
        if self.padding_free:
            return [list(range(len(samples)))]
        return pack_samples([len(s["input_ids"]) for s in samples], self.max_length)

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        if features and "pack" in features[0]:  # rows packed ahead of time: one feature, one row
            samples = [s for f in features for s in f["pack"]]
            bounds = [0, *itertools.accumulate(len(f["pack"]) for f in features)]
            rows = [list(range(a, b)) for a, b in itertools.pairwise(bounds)]
            if self.padding_free:
                rows = [list(range(len(samples)))]
        else:
            samples = features
            rows = self.rows(samples)
        lengths = [sum(len(samples[i]["input_ids"]) for i in row) for row in rows]
        width = max(lengths) if self.padding_free else _round_up(max(lengths), self.pad_to_multiple_of)
        shape = (len(rows), width)
        ids = torch.full(shape, self.pad_token_id, dtype=torch.long)
        labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
        pos = torch.zeros(shape, dtype=torch.long)
        weights = torch.zeros(shape, dtype=torch.float32)
        seq_ids = torch.full(shape, -1, dtype=torch.long)  # which sample each token belongs to
        seq_lens: list[int] = []
        for r, row in enumerate(rows):
            at = 0
            for k, i in enumerate(row):
                s = samples[i]
                n = len(s["input_ids"])
                ids[r, at : at + n] = torch.tensor(s["input_ids"])
                lab = torch.tensor(s["labels"])
                lab[0] = IGNORE_INDEX  # never predicted from the previous sample's last token
                labels[r, at : at + n] = lab
                pos[r, at : at + n] = torch.arange(n)
                weights[r, at : at + n] = torch.tensor(_weights(s))
                seq_ids[r, at : at + n] = k
                seq_lens.append(n)
                at += n
            if at < width:  # padding forms its own block so no row of the mask is empty
                pos[r, at:] = torch.arange(width - at)
                seq_ids[r, at:] = len(row)
        self.last_padding_share = 1.0 - sum(lengths) / (len(rows) * width)
        batch: dict[str, Any] = {"input_ids": ids, "labels": labels, "position_ids": pos}
        if any(s.get("weights") is not None for s in samples):
            batch["loss_weights"] = weights
        if self.attention == "flash":
            batch.update(varlen_inputs(seq_lens))
            return batch
        if self.attention == "flex":
            return batch
        batch["attention_mask"] = block_causal_mask(seq_ids, self.attention, self.mask_dtype)
        return batch


def varlen_inputs(lengths: list[int]) -> dict[str, Any]:
    """flash-attention varlen keyword arguments for samples of ``lengths`` laid back to back in one row.

    >>> v = varlen_inputs([3, 2, 4])
    >>> v["cu_seq_lens_q"].tolist(), v["max_length_q"], v["cu_seq_lens_q"].dtype
    ([0, 3, 5, 9], 4, torch.int32)
    """
    import torch

    cu = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    cu[1:] = torch.tensor(lengths, dtype=torch.int32).cumsum(0)
    longest = max(lengths)
    return {"cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": longest, "max_length_k": longest}


def block_causal_mask(seq_ids, attention: str = "sdpa", dtype=None):
    """``[B, 1, L, L]`` mask: token q may see token k iff same sample and k <= q."""
    import torch

    L = seq_ids.shape[1]
    causal = torch.ones(L, L, dtype=torch.bool).tril()
    allowed = (seq_ids[:, :, None] == seq_ids[:, None, :]) & causal
    allowed = allowed[:, None, :, :]
    if attention == "sdpa":
        return allowed
    dtype = dtype or torch.float32
    out = torch.zeros(allowed.shape, dtype=dtype)
    return out.masked_fill(~allowed, torch.finfo(dtype).min)
