"""Fused training kernels: Liger's Triton kernels on CUDA, our chunked trained-positions loss everywhere.

``training.kernels``:

- ``auto``: ``liger`` on a CUDA GPU where liger-kernel is installed, else ``none``;
- ``liger``: RMSNorm, RoPE and SwiGLU swapped for Liger's kernels in the model, and the loss
  computed by Liger's fused linear cross-entropy over the trained positions (refused on CPU or
  without the package);
- ``none``: the stock modules, and :func:`sftlab.train.fused_ce.linear_cross_entropy` for the loss.

Either way the output layer only ever sees the positions whose next token is trained
(:class:`~sftlab.train.fused_ce.HeadSelector`); Liger only changes who computes their loss.
Samples with per-token loss weights keep our loss: Liger's kernel weighs classes, not tokens.
"""

from __future__ import annotations

import inspect

from sftlab.errors import MissingDependencyError, SftlabError
from sftlab.train.hardware import EXTRA_HINT, Device, Installed

LIGER_PATCHES = {"rope": True, "rms_norm": True, "swiglu": True, "cross_entropy": False,
                 "fused_linear_cross_entropy": False}  # fmt: skip
"""What Liger patches in the model. Its own fused loss stays off inside the model: the loss is ours to
call on the trained positions only (``fused_linear_cross_entropy=True`` would replace the model's forward)."""


def choose_kernels(requested: str, device: Device, installed: Installed) -> str:
    """``liger`` or ``none`` for ``training.kernels: requested``; an impossible request is one line.

    >>> choose_kernels("auto", Device.cuda("H100", (9, 0)), Installed.of("liger_kernel"))
    'liger'
    >>> choose_kernels("auto", Device(), Installed.of("liger_kernel"))
    'none'
    """
    if requested == "none":
        return "none"
    if requested == "auto":
        return "liger" if device.is_cuda and "liger_kernel" in installed else "none"
    if not device.is_cuda:
        raise SftlabError(
            "training.kernels: liger runs Triton kernels on a CUDA GPU; use auto or none on CPU"
        )
    if "liger_kernel" not in installed:
        raise MissingDependencyError("liger-kernel", "training.kernels: liger", EXTRA_HINT["liger_kernel"])
    return "liger"


def describe_kernels(kernels: str) -> str:
    """The line printed at start and kept in the summary."""
    if kernels == "liger":
        return "liger (fused linear cross-entropy, RMSNorm, RoPE, SwiGLU)"
    return "none (chunked trained-positions loss)"


def apply_kernels(model, kernels: str):
    """Patch the (not yet peft-wrapped) model's modules with Liger's; architectures it lacks stay as they are.

    Liger's RoPE patch replaces the architecture's ``apply_rotary_pos_emb`` in its transformers module, so it
    holds for every model of that architecture in this process.
    """
    if kernels != "liger":
        return model
    try:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance
    except ImportError:
        raise MissingDependencyError(
            "liger-kernel", "training.kernels: liger", EXTRA_HINT["liger_kernel"]
        ) from None
    _apply_liger_kernel_to_instance(model=model, **LIGER_PATCHES)
    return model


_LIGER_LOSS = None


def liger_linear_cross_entropy(hidden, weight, targets, *, bias=None):
    """Σ CE(hidden @ weightᵀ + bias, targets) by Liger's fused kernel (fp32 accumulation where it offers it).

    Same contract as :func:`sftlab.train.fused_ce.linear_cross_entropy` without token weights.
    """
    global _LIGER_LOSS
    if _LIGER_LOSS is None:
        import torch
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        options = {"reduction": "sum"}
        if "accum_dtype" in inspect.signature(LigerFusedLinearCrossEntropyLoss.__init__).parameters:
            options["accum_dtype"] = torch.float32  # bf16 weight gradients summed in fp32, as ours are
        _LIGER_LOSS = LigerFusedLinearCrossEntropyLoss(**options)
    if hidden.size(0) == 0:
        return hidden.sum() * 0.0 + weight.sum() * 0.0  # keeps the graph (DDP expects every parameter used)
    loss = _LIGER_LOSS(weight, hidden, targets, bias)
    return (loss[0] if isinstance(loss, tuple) else loss).float()
