"""Which attention kernel runs, and how packed rows keep their samples apart.

==========================  ===========================  ==========================================
device                      model attention              packed rows (``render.packing``)
==========================  ===========================  ==========================================
CUDA, sm 8.0+, flash-attn   ``flash_attention_2``        ``flash``: one padding-free row, varlen
                                                         kernels (``cu_seq_lens``, ``position_ids``)
CUDA without flash-attn     ``sdpa``                     ``flex``: one padding-free row, FlexAttention
                                                         block mask built from restarting positions
CPU                         ``sdpa``                     ``sdpa``: dense block-diagonal ``[B,1,L,L]``
==========================  ===========================  ==========================================

A dense ``L × L`` mask costs memory quadratic in the row length and makes SDPA fall
back from its flash kernel to the slow math path, so it is the CPU path only.
"""

from __future__ import annotations

from sftlab.errors import SftlabError
from sftlab.train.hardware import EXTRA_HINT, Device, Installed

PACKED_MODES = {"flash_attention_2": "flash", "flex_attention": "flex", "eager": "eager", "sdpa": "sdpa"}
"""Model attention implementation -> :class:`~sftlab.render.collate.PackedCollator` mode."""


def choose_attention(requested: str, device: Device, installed: Installed) -> str:
    """The model's attention implementation for ``model.attn_implementation: requested`` on ``device``.

    >>> choose_attention("auto", Device.cuda("H100", (9, 0)), Installed.of("flash_attn"))
    'flash_attention_2'
    >>> choose_attention("auto", Device.cuda("H100", (9, 0)), Installed())
    'sdpa'
    >>> choose_attention("auto", Device(), Installed.of("flash_attn"))
    'sdpa'
    """
    if requested == "auto":
        return "flash_attention_2" if device.flash_attention and "flash_attn" in installed else "sdpa"
    if requested == "flash_attention_2":
        problem = flash_attention_problem(device, installed)
        if problem:
            raise SftlabError(problem)
    return requested


def flash_attention_problem(device: Device, installed: Installed) -> str | None:
    """Why flash-attention 2 cannot run here (one line with the fix), or ``None``."""
    if not device.is_cuda:
        return "model.attn_implementation: flash_attention_2 needs a CUDA GPU; use sdpa (or auto) on this machine"
    if not device.flash_attention:
        return (
            f"model.attn_implementation: flash_attention_2 needs compute capability 8.0+ and this GPU is "
            f"{device.describe()}; use sdpa (or auto)"
        )
    if "flash_attn" not in installed:
        return (
            "model.attn_implementation: flash_attention_2 needs the flash-attn package; install it with: "
            f"{EXTRA_HINT['flash_attn']} (or use auto, which falls back to sdpa)"
        )
    return None


def training_attention(model_attention: str, device: Device, packing: bool) -> str:
    """The implementation to *train* with: on a GPU, packed rows never get a dense mask.

    >>> training_attention("sdpa", Device.cuda("H100", (9, 0)), packing=True)
    'flex_attention'
    >>> training_attention("flash_attention_2", Device.cuda("H100", (9, 0)), packing=True)
    'flash_attention_2'
    >>> training_attention("sdpa", Device(), packing=True)
    'sdpa'
    """
    if packing and device.is_cuda and model_attention != "flash_attention_2":
        return "flex_attention"
    return model_attention


def packed_mode(attention: str) -> str:
    """The collator mode for a model attention implementation (``sdpa`` for anything unknown)."""
    return PACKED_MODES.get(attention, "sdpa")


def set_attention(model, attention: str):
    """Switch a loaded model to ``attention``; an architecture that lacks it is one line naming the fix."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) == attention:
        return model
    try:
        model.set_attn_implementation(attention)
    except (ValueError, ImportError) as err:
        fix = (
            "install flash-attn, or set render.packing: false"
            if attention == "flex_attention"
            else "set model.attn_implementation: sdpa"
        )
        raise SftlabError(
            f"{type(model).__name__} cannot use {attention} ({str(err).splitlines()[0]}); {fix}"
        ) from None
    return model
