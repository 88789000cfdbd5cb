"""Rendering and tokenization: chat templates, assistant-only labels with end-of-turn,
truncation, packing, collators and the mask preview.

>>> from sftlab.render import IGNORE_INDEX, render_record, resolve_template  # doctest: +SKIP
"""

from sftlab.render.collate import PackedCollator, PaddingCollator, block_causal_mask
from sftlab.render.dataset import TokenizedData, tokenize_records
from sftlab.render.errors import EmptyLabelsError, NotPrefixStableError, RenderError, TooLongError
from sftlab.render.labels import IGNORE_INDEX, count_trained, labels_from_weights, token_mean_loss
from sftlab.render.pack import pack_samples, padding_share
from sftlab.render.sample import RenderedSample, render_record, render_samples
from sftlab.render.templates import BUILTIN_TEMPLATES, resolve_template

__all__ = [
    "BUILTIN_TEMPLATES",
    "IGNORE_INDEX",
    "EmptyLabelsError",
    "NotPrefixStableError",
    "PackedCollator",
    "PaddingCollator",
    "RenderError",
    "RenderedSample",
    "TokenizedData",
    "TooLongError",
    "block_causal_mask",
    "count_trained",
    "labels_from_weights",
    "pack_samples",
    "padding_share",
    "render_record",
    "render_samples",
    "resolve_template",
    "token_mean_loss",
    "tokenize_records",
]
