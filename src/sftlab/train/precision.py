"""Training precision from the hardware: bf16 where the GPU supports it, fp16 on older GPUs, fp32 on CPU."""

from __future__ import annotations

from typing import Literal

from sftlab.errors import SftlabError
from sftlab.train.hardware import Device

Precision = Literal["fp32", "bf16", "fp16"]


def resolve_precision(requested: str = "auto", device: Device | None = None) -> Precision:
    """The precision to train in on ``device`` (this machine's when not given); refuses what it cannot run.

    >>> resolve_precision("fp32")
    'fp32'
    >>> resolve_precision("auto", Device.cuda("Tesla V100-SXM2-16GB", (7, 0)))
    'fp16'
    """
    if device is None:
        from sftlab.train.hardware import detect_device

        device = detect_device()
    problem = precision_problem(requested, device)
    if problem:
        raise SftlabError(problem)
    if requested == "auto":
        if not device.is_cuda:
            return "fp32"
        return "bf16" if device.bf16 else "fp16"
    return requested  # type: ignore[return-value]


def precision_problem(requested: str, device: Device) -> str | None:
    """Why ``training.precision: requested`` cannot run on ``device`` (one line with the fix), or ``None``."""
    if requested == "fp16" and not device.is_cuda:
        return "training.precision: fp16 mixed precision needs a CUDA GPU; use fp32 (or auto) on CPU"
    if requested == "bf16" and device.is_cuda and not device.bf16:
        return (
            f"training.precision: bf16 needs compute capability 8.0+ and this GPU is {device.describe()}; "
            "set training.precision: fp16 (or fp32, slower but safe for models trained in bf16)"
        )
    return None


def load_dtype(precision: Precision, method: str) -> str:
    """Dtype to load the base weights in.

    Adapters and soft prompts train in fp32 while the frozen base may sit in
    bf16/fp16 (half the memory); full and freeze fine-tuning keep fp32 master
    weights and let autocast run the matmuls in half precision, because
    optimizer updates of 1e-5 vanish in bf16's 8-bit mantissa.
    """
    if precision == "fp32" or method in ("full", "freeze"):
        return "float32"
    return {"bf16": "bfloat16", "fp16": "float16"}[precision]
