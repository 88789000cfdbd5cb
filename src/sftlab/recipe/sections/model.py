"""``model:`` — which model to fine-tune and how to load it."""

from __future__ import annotations

from typing import Literal

from sftlab.recipe.base import Section


class ModelSection(Section):
    name: str = "smollm2-135m-instruct"
    """Embedded default name, Hugging Face hub id, local HF folder, or a .gguf file."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) for hub ids."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights dtype; ``auto`` picks bf16 where the GPU supports it, fp32 on CPU."""
    trust_remote_code: bool = False
    """Run Python code shipped with a hub model. Off by default: it executes untrusted code."""
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] = "auto"
    """Attention kernel; ``auto``: flash-attention 2 on a CUDA GPU of compute capability 8.0+ with flash-attn
    installed, else SDPA. Packed rows on a GPU are padding-free: flash-attn varlen, else FlexAttention."""
