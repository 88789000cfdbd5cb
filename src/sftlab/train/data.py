"""Training data as the Trainer sees it: rendered samples, datasets, collators.

Rendering itself (templates, masks, packing) lives in :mod:`sftlab.render`;
this module only adapts its output to the Trainer and tags eval rows with their
group (source and task) for per-source and per-task eval loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from sftlab.recipe.sections.render import RenderSection
from sftlab.train.trainer import GROUP_KEY


def sample_dict(input_ids, labels, weights=None, source=None, task=None) -> dict[str, Any]:
    """The sample form used by the train package (a plain dict, what collators take).

    >>> sample_dict([1, 2, 3], [-100, 2, 3], source="a")["n_tokens"]
    2
    """
    d: dict[str, Any] = {"input_ids": list(input_ids), "labels": list(labels)}
    if weights is not None:
        d["weights"] = list(weights)
    d["source"] = source or "default"
    d["task"] = task
    d["n_tokens"] = sum(1 for x in d["labels"][1:] if x != -100)
    return d


def tokenize(
    records: Sequence, tokenizer, cfg: RenderSection, cache_dir: Path | None = None
) -> tuple[list[dict], dict]:
    """Render records with :func:`sftlab.render.tokenize_records`; returns (samples, render stats)."""
    from sftlab.render import tokenize_records

    if not records:
        return [], {}
    data = tokenize_records(list(records), tokenizer, cfg, cache_dir=cache_dir)
    samples = [
        sample_dict(s.input_ids, s.labels, s.weights, s.source, s.task)
        for s in data.samples
        if s.num_trained > 1
    ]
    stats = data.stats if isinstance(data.stats, dict) else getattr(data.stats, "__dict__", {})
    return samples, dict(stats)


class SampleDataset(torch.utils.data.Dataset):
    """A list of samples, seen through ``indices`` (the mixing plan: repeats allowed)."""

    def __init__(
        self,
        samples: Sequence[dict],
        indices: Sequence[int] | None = None,
        groups: list[tuple[str, str]] | None = None,
    ):
        self.samples = samples
        self.indices = list(indices) if indices is not None else list(range(len(samples)))
        self.groups = {g: i for i, g in enumerate(groups or [])}

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        s = self.samples[self.indices[i]]
        out = _trainer_view(s)
        if self.groups:
            out[GROUP_KEY] = self.groups.get(group_of(s), 0)
        return out


class PackedDataset(torch.utils.data.Dataset):
    """An epoch's samples packed into rows of at most ``max_length`` tokens (best-fit decreasing).

    One item is one row, ``{"pack": [sample, ...]}``, so the batch size counts rows, as in
    other trainers; packing over the epoch rather than per batch leaves almost no padding.
    """

    def __init__(self, samples: Sequence[dict], indices: Sequence[int], max_length: int):
        from sftlab.render.pack import pack_samples

        self.samples = samples
        self.max_length = max_length
        order = list(indices)
        bins = pack_samples([len(samples[i]["input_ids"]) for i in order], max_length)
        self.rows = [[order[j] for j in row] for row in bins]

    def __len__(self) -> int:
        return len(self.rows)

    def describe(self) -> str:
        """``"R rows of <= L tokens, x% full on average"`` for the training log."""
        tokens = sum(len(self.samples[j]["input_ids"]) for row in self.rows for j in row)
        full = tokens / max(1, len(self.rows) * self.max_length)
        return f"{len(self.rows):,} rows of <= {self.max_length} tokens, {100 * full:.1f}% full on average"

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"pack": [_trainer_view(self.samples[j]) for j in self.rows[i]]}


def _trainer_view(s: dict) -> dict[str, Any]:
    out: dict[str, Any] = {"input_ids": s["input_ids"], "labels": s["labels"]}
    if s.get("weights") is not None:
        out["weights"] = s["weights"]
    return out


def group_of(sample: dict) -> tuple[str, str]:
    """Eval group of a sample: its ``(source, task)``; eval loss is reported per source and per task."""
    return (sample.get("source") or "default", sample.get("task") or "")


class GroupCollator:
    """Wraps a collator and carries the eval group index of each row."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, features: list[dict]) -> dict[str, Any]:
        groups = [f.pop(GROUP_KEY, 0) for f in (dict(x) for x in features)]
        batch = self.inner([{k: v for k, v in f.items() if k != GROUP_KEY} for f in features])
        batch[GROUP_KEY] = torch.tensor(groups, dtype=torch.long)
        return batch


def train_collator(tokenizer, cfg: RenderSection, packing: bool, attn_implementation: str | None):
    """Packed rows (no attention across samples) or right-padded rows."""
    from sftlab.render import PackedCollator, PaddingCollator

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if not packing:
        return PaddingCollator(pad)
    from sftlab.train.attention import packed_mode

    attention = packed_mode(attn_implementation or "sdpa")
    return PackedCollator(cfg.max_length, pad, attention=attention)


def eval_collator(tokenizer):
    """Eval is never packed, so that every row is one sample and losses can be grouped."""
    from sftlab.render import PaddingCollator

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return GroupCollator(PaddingCollator(pad))
