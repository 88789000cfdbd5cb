"""Optimizers and memory savers: what ``training.optimizer`` accepts, what it costs, and when to checkpoint.

The optimizer is built by the HF Trainer from its name (``TrainingArguments.optim``), so training,
``sftlab estimate`` and ``estimate --measure`` all mean the same thing by ``adamw_8bit``. This module
holds the names we test and document, the bytes each keeps per trained parameter (for the estimator),
and the one-line refusals (bitsandbytes missing, or no CUDA for it).
"""

from __future__ import annotations

from typing import get_args

from sftlab.errors import SftlabError
from sftlab.recipe.sections.training import OptimizerName
from sftlab.train.hardware import EXTRA_HINT, Device, Installed

OPTIMIZERS: tuple[str, ...] = get_args(OptimizerName)
"""The HF Trainer names ``training.optimizer`` accepts (a subset of ``transformers.OptimizerNames``), in the
schema's one list."""

STATE_BYTES = {
    "adamw_torch": 8.0,
    "adamw_torch_fused": 8.0,
    "adamw_8bit": 2.0,
    "adamw_bnb_8bit": 2.0,
    "paged_adamw_8bit": 2.0,
    "paged_adamw_32bit": 8.0,
    "adafactor": 0.0,
    "lion_8bit": 1.0,
    "paged_lion_8bit": 1.0,
    "lion_32bit": 4.0,
    "sgd": 0.0,
}
"""Optimizer-state bytes per trained parameter: AdamW two fp32 moments (8) or two 8-bit ones (2), Lion one
momentum, SGD none (no momentum by default). Adafactor's factored second moment is counted apart, by the
shapes of the matrices (:attr:`sftlab.estimate.params.ParamCounts.factored`)."""

ALIASES = {"adamw": "adamw_torch", "adamw8bit": "adamw_8bit"}
"""Names ``sftlab estimate --optimizer`` took before it shared training's list."""

GRADIENT_CHECKPOINTING_PARAMS = 1_000_000_000
"""``gradient_checkpointing: auto`` turns it on for full fine-tuning of models above this size on a GPU:
activations at 2048 tokens outgrow the weights there, and recomputing them costs ~30% of the step."""


def needs_bitsandbytes(name: str) -> bool:
    """8-bit, paged and Lion optimizers live in bitsandbytes.

    >>> needs_bitsandbytes("paged_adamw_8bit"), needs_bitsandbytes("adamw_torch_fused")
    (True, False)
    """
    return "8bit" in name or "paged" in name or "bnb" in name or name.startswith("lion")


def canonical_optimizer(name: str) -> str:
    """A known optimizer name (old estimate aliases mapped); anything else is one line listing the choices."""
    name = ALIASES.get(name, name)
    if name not in OPTIMIZERS:
        raise SftlabError(f"optimizer '{name}' is not one of {', '.join(OPTIMIZERS)}")
    return name


def optimizer_problem(name: str, device: Device, installed: Installed) -> str | None:
    """Why ``training.optimizer: name`` cannot run here (one line with the fix), or ``None``."""
    if not needs_bitsandbytes(name):
        return None
    if "bitsandbytes" not in installed:
        return (
            f"training.optimizer: {name} needs the optional package 'bitsandbytes'; install it with: "
            f"{EXTRA_HINT['bitsandbytes']} (or use adamw_torch_fused, or adafactor for small optimizer state)"
        )
    if not device.is_cuda:
        return (
            f"training.optimizer: {name} runs bitsandbytes' CUDA kernels; use adamw_torch or adafactor on CPU"
        )
    return None


def check_optimizer(name: str, device: Device, installed: Installed) -> str:
    """``name`` when it can run on ``device``; else :class:`SftlabError` with the fix."""
    problem = optimizer_problem(name, device, installed)
    if problem:
        raise SftlabError(problem)
    return name


def auto_gradient_checkpointing(setting: bool | str, method: str, n_params: int, device: Device) -> bool:
    """``training.gradient_checkpointing``: ``true``/``false`` as given; ``auto`` is on for full fine-tuning
    of a model over ~1B parameters on a GPU (non-reentrant, so frozen inputs need no extra hook).

    >>> gpu = Device.cuda("H100", (9, 0))
    >>> auto_gradient_checkpointing("auto", "full", 1_500_000_000, gpu), auto_gradient_checkpointing("auto", "lora", 8_000_000_000, gpu)
    (True, False)
    """
    if isinstance(setting, bool):
        return setting
    return device.is_cuda and method == "full" and n_params > GRADIENT_CHECKPOINTING_PARAMS
