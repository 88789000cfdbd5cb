"""Training precision from the hardware: bf16 where the GPU supports it, fp16 on older GPUs, fp32 on CPU."""

from __future__ import annotations

from typing import Literal

from sftlab.errors import SftlabError

Precision = Literal["fp32", "bf16", "fp16"]


def resolve_precision(requested: str = "auto") -> Precision:
    """The precision to train in; refuses combinations the hardware cannot run.

    >>> resolve_precision("fp32")
    'fp32'
    """
    import torch

    cuda = torch.cuda.is_available()
    if requested == "auto":
        if not cuda:
            return "fp32"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if requested == "fp16" and not cuda:
        raise SftlabError(
            "training.precision: fp16 mixed precision needs a CUDA GPU; use fp32 (or auto) on CPU"
        )
    if requested == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise SftlabError(
            "training.precision: this GPU has no bf16 support (needs compute capability 8.0+); use fp16 or auto"
        )
    return requested  # type: ignore[return-value]


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
