"""``training:`` — method and hyperparameters."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sftlab.recipe.base import Section


class LoraSection(Section):
    r: int = Field(default=16, ge=1)
    """LoRA rank."""
    alpha: float = 32
    """LoRA scaling numerator (scale = alpha / r, or alpha / sqrt(r) with rsLoRA)."""
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    """Module names to adapt, or ``all-linear`` (every linear layer but the output head)."""
    use_rslora: bool = False
    use_dora: bool = False
    init: Literal["default", "pissa", "gaussian"] = "default"
    """Adapter initialisation; ``pissa`` starts from the principal singular vectors."""
    loraplus_lr_ratio: float | None = Field(default=None, gt=0)
    """LoRA+: learning rate of B = ratio × learning rate of A (16 in the paper)."""


class TrainingSection(Section):
    method: Literal["full", "freeze", "lora", "qlora", "prompt_tuning", "p_tuning"] = "lora"
    lr: float | None = Field(default=None, gt=0)
    """Peak learning rate; default depends on the method (LoRA 2e-4, full 1e-5, prompt tuning 3e-2)."""
    epochs: float = Field(default=2, gt=0)
    batch_size: int = Field(default=4, ge=1)
    """Per-device micro-batch size."""
    grad_accum: int = Field(default=1, ge=1)
    """Micro-batches accumulated per optimizer step."""
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    weight_decay: float = Field(default=0.0, ge=0)
    max_grad_norm: float = Field(default=1.0, gt=0)
    max_steps: int | None = Field(default=None, ge=1)
    """Stop after this many optimizer steps (overrides epochs)."""
    gradient_checkpointing: bool = False
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """``auto``: bf16 where supported, fp16 on older GPUs, fp32 on CPU."""
    lora: LoraSection = Field(default_factory=LoraSection)
