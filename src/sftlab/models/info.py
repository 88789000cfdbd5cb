"""``sftlab model info``: what a model is, in numbers."""

from __future__ import annotations

from typing import Any

from sftlab.models.load import load_model, load_tokenizer
from sftlab.models.resolve import resolve_model


def _tokenizer_info(tokenizer) -> dict[str, Any]:
    special = {
        name: getattr(tokenizer, name)
        for name in ("bos_token", "eos_token", "pad_token", "unk_token")
        if getattr(tokenizer, name, None) is not None
    }
    return {
        "vocab_size_tokenizer": len(tokenizer),
        "chat_template": bool(getattr(tokenizer, "chat_template", None)),
        "special_tokens": special,
        "additional_special_tokens": len(getattr(tokenizer, "additional_special_tokens", []) or []),
    }


def model_info(reference: str, *, trust_remote_code: bool = False) -> dict[str, Any]:
    """Architecture, parameter count, dtype, context length, template and special tokens.

    A tokenizer-only reference reports its tokenizer and ``"weights": False``.
    """
    resolved = resolve_model(reference)
    tokenizer = load_tokenizer(resolved, trust_remote_code=trust_remote_code)
    head = {
        "reference": reference,
        "kind": resolved.kind,
        "path": resolved.path,
        "weights": resolved.has_weights,
    }
    if not resolved.has_weights:
        return {**head, **_tokenizer_info(tokenizer)}
    model = load_model(resolved, dtype="auto", device="cpu", trust_remote_code=trust_remote_code)
    config = model.config
    params = sum(p.numel() for p in model.parameters())
    return {
        **head,
        "architecture": (config.architectures or [type(model).__name__])[0],
        "model_type": config.model_type,
        "parameters": params,
        "parameters_human": f"{params / 1e6:.1f}M" if params < 1e9 else f"{params / 1e9:.2f}B",
        "dtype": str(model.dtype).removeprefix("torch."),
        "context_length": getattr(config, "max_position_embeddings", None),
        "layers": getattr(config, "num_hidden_layers", None),
        "hidden_size": getattr(config, "hidden_size", None),
        "vocab_size": getattr(config, "vocab_size", None),
        "tied_embeddings": bool(getattr(config, "tie_word_embeddings", False)),
        **_tokenizer_info(tokenizer),
    }
