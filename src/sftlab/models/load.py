"""Load tokenizers and models with the right dtype and no remote code unless asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sftlab.errors import ModelError
from sftlab.models.resolve import ResolvedModel, resolve_model


def pick_dtype(name: str = "auto"):
    """``auto``: bf16 on a GPU that supports it, fp16 on an older GPU, fp32 on CPU."""
    import torch

    if name != "auto":
        return {
            "float32": torch.float32,
            "fp32": torch.float32,
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
            "float16": torch.float16,
            "fp16": torch.float16,
        }[name]
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _resolved(ref: str | ResolvedModel, revision: str | None) -> ResolvedModel:
    return ref if isinstance(ref, ResolvedModel) else resolve_model(ref, revision=revision)


def load_tokenizer(ref: str | ResolvedModel, *, revision: str | None = None, trust_remote_code: bool = False):
    """The tokenizer of a model, with a pad token (the EOS token when the model has none)."""
    from transformers import AutoTokenizer

    resolved = _resolved(ref, revision)
    if resolved.is_adapter and not (Path(resolved.path) / "tokenizer_config.json").is_file():
        resolved = resolve_model(resolved.base_reference())
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            resolved.path, revision=resolved.revision, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as err:
        raise ModelError(
            f"cannot load the tokenizer of '{resolved.reference}': {str(err).splitlines()[0]}"
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def no_weights_message(resolved: ResolvedModel) -> str:
    """One line for commands that need weights but were given a tokenizer-only reference."""
    return (
        f"'{resolved.reference}' is a tokenizer without weights (no config.json in {resolved.path}): it can render, "
        "preview and check data (data preview, data inspect --tokenizer, doctor) but cannot train, evaluate or "
        "generate; set model.name to a model with weights"
    )


def load_model(
    ref: str | ResolvedModel,
    *,
    dtype: str = "auto",
    device: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str = "auto",
    merge_adapter: bool = False,
    **kwargs: Any,
):
    """A causal LM from safetensors (``use_safetensors=True``: pickled weights are never loaded).

    An adapter folder (or a run whose ``final/`` holds an adapter) loads its base
    model first and applies the adapter on top (a ``peft.PeftModel``). For inference,
    ``merge_adapter=True`` folds a LoRA adapter into the (unquantized) base weights in
    memory: the same outputs (to float rounding) without the adapter's extra matmuls
    in every layer; other adapters (prompt tuning) and quantized bases stay as they are.
    """
    import torch
    from transformers import AutoModelForCausalLM

    resolved = _resolved(ref, revision)
    if not resolved.has_weights:
        raise ModelError(no_weights_message(resolved))
    if resolved.is_adapter:
        from peft import PeftModel

        base = load_model(  # a base that is itself a LoRA run is folded in before this adapter goes on top
            resolved.base_reference(),
            dtype=dtype,
            device=device,
            trust_remote_code=trust_remote_code,
            attn_implementation=attn_implementation,
            merge_adapter=True,
            **kwargs,
        )
        model = PeftModel.from_pretrained(base, resolved.path, is_trainable=False).to(base.device)
        mergeable = not getattr(model.peft_config["default"], "is_prompt_learning", False)
        if merge_adapter and mergeable and not getattr(base, "is_quantized", False):
            return model.merge_and_unload()
        return model
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    attn = resolve_attention(attn_implementation, device)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            resolved.path,
            revision=resolved.revision,
            dtype=pick_dtype(dtype),
            trust_remote_code=trust_remote_code,
            use_safetensors=True,
            attn_implementation=attn,
            **kwargs,
        )
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load model '{resolved.reference}': {str(err).splitlines()[0]}") from None
    return model.to(device)


def resolve_attention(requested: str, device: str) -> str:
    """``auto``: flash-attention 2 where the model is placed on a GPU that supports it and flash-attn is
    installed, else SDPA (:func:`sftlab.train.attention.choose_attention`). An explicit choice is checked
    against this machine's GPU, not the placement: training loads on the CPU and the Trainer moves it."""
    from sftlab.train.attention import choose_attention
    from sftlab.train.hardware import detect_device, detect_installed

    if requested == "auto" and not str(device).startswith("cuda"):
        return "sdpa"
    return choose_attention(requested, detect_device(), detect_installed())
