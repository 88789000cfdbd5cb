"""Models: resolve a reference (embedded name, hub id, folder, GGUF), load it, describe it."""

from sftlab.models.load import load_model, load_tokenizer, pick_dtype
from sftlab.models.resolve import ResolvedModel, resolve_model

__all__ = ["ResolvedModel", "load_model", "load_tokenizer", "pick_dtype", "resolve_model"]
