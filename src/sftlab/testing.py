"""Tiny real models for tests and benchmarks: a real tokenizer and chat template, random weights.

A 2-layer Llama with hidden size 16 over the embedded model's 49,152-token
vocabulary has about 0.8M parameters and trains in milliseconds per step, so
rendering, masking, packing and training tests run in seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path

EMBEDDED_TOKENIZER_MODEL = "smollm2-135m-instruct"


def embedded_tokenizer():
    """The embedded model's real tokenizer (ChatML template), from the conversion cache."""
    from sftlab.models import load_tokenizer

    return load_tokenizer(EMBEDDED_TOKENIZER_MODEL)


def tiny_llama(
    tokenizer,
    *,
    hidden_size: int = 16,
    layers: int = 2,
    heads: int = 2,
    kv_heads: int = 1,
    intermediate_size: int = 32,
    max_position_embeddings: int = 2048,
    seed: int = 0,
):
    """A randomly initialised LlamaForCausalLM sized for tests, matching ``tokenizer``'s vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden_size // heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).float()


def save_tiny_model(folder: str | Path, tokenizer, **kwargs) -> Path:
    """Write a tiny model plus tokenizer as a loadable HF folder (safetensors)."""
    folder = Path(folder)
    model = tiny_llama(tokenizer, **kwargs)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
