"""The hardware-dependent choices of one training run, made once, printed at start and kept in the summary.

:func:`plan_setup` is pure (recipe + device description + installed packages + model size),
so every branch is tested on a CPU; :func:`apply_setup` is the only part that touches the model.
"""

from __future__ import annotations

from dataclasses import dataclass

from sftlab.recipe.schema import Recipe
from sftlab.train.attention import choose_attention, packed_mode, set_attention, training_attention
from sftlab.train.hardware import Device, Installed, detect_device, detect_installed
from sftlab.train.kernels import apply_kernels, choose_kernels, describe_kernels
from sftlab.train.optim import auto_gradient_checkpointing, check_optimizer

PACKED_ROWS = {
    "flash": "padding-free, flash-attn varlen",
    "flex": "padding-free, FlexAttention block mask",
    "sdpa": "dense block-diagonal mask (CPU path)",
    "eager": "dense block-diagonal mask (CPU path)",
}


@dataclass(frozen=True)
class TrainingSetup:
    """What runs where: ``attention`` is the implementation training uses, ``packed`` the collator mode."""

    device: Device
    attention: str
    packed: str | None
    kernels: str
    optimizer: str
    gradient_checkpointing: bool

    def describe(self) -> str:
        """One line: ``setup: cpu; attention sdpa (packed rows: ...); kernels none (...); ...``."""
        rows = f" (packed rows: {PACKED_ROWS[self.packed]})" if self.packed else ""
        return (
            f"setup: {self.device.describe()}; attention {self.attention}{rows}; kernels "
            f"{describe_kernels(self.kernels)}; optimizer {self.optimizer}; gradient checkpointing "
            f"{'on' if self.gradient_checkpointing else 'off'}"
        )

    def to_dict(self) -> dict:
        """The summary's fields (``train/summary.json``)."""
        return {
            "device": self.device.describe(),
            "attention": self.attention,
            "packed_rows": PACKED_ROWS[self.packed] if self.packed else None,
            "kernels": self.kernels,
            "optimizer": self.optimizer,
            "gradient_checkpointing": self.gradient_checkpointing,
        }


def plan_setup(
    recipe: Recipe,
    *,
    packing: bool,
    n_params: int,
    device: Device | None = None,
    installed: Installed | None = None,
) -> TrainingSetup:
    """Every choice for ``recipe`` on ``device`` (this machine's when not given); impossible requests raise."""
    device = device if device is not None else detect_device()
    installed = installed if installed is not None else detect_installed()
    t = recipe.training
    model_attention = choose_attention(recipe.model.attn_implementation, device, installed)
    attention = training_attention(model_attention, device, packing)
    return TrainingSetup(
        device=device,
        attention=attention,
        packed=packed_mode(attention) if packing else None,
        kernels=choose_kernels(t.kernels, device, installed),
        optimizer=check_optimizer(t.optimizer, device, installed),
        gradient_checkpointing=auto_gradient_checkpointing(
            t.gradient_checkpointing, t.method, n_params, device
        ),
    )


def apply_setup(model, setup: TrainingSetup):
    """Fused kernels and the training attention on the loaded model, before peft wraps it."""
    model = apply_kernels(model, setup.kernels)
    return set_attention(model, setup.attention)
