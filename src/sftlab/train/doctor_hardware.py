"""``sftlab doctor``'s hardware checks: what this GPU (or CPU) and these packages cannot run, before a run fails.

Older GPUs are where most of these bite. A V100 or T4 (compute capability 7.x) has no bf16
tensor cores and no flash-attention 2 kernels: train in fp16 (or fp32) with SDPA there. A
model released in bf16 may overflow fp16's range (65504) in its activations, so fp16 on such
a model is a warning: watch for NaN losses, or train in fp32.

Every check is a function of a :class:`~sftlab.train.hardware.Device` description, so tests pass
an H100, a V100 or the CPU without owning one.
"""

from __future__ import annotations

from sftlab.recipe.schema import Recipe
from sftlab.train.attention import flash_attention_problem
from sftlab.train.doctor import Finding
from sftlab.train.hardware import EXTRA_HINT, Device, Installed, detect_device, detect_installed
from sftlab.train.kernels import choose_kernels
from sftlab.train.optim import optimizer_problem
from sftlab.train.precision import precision_problem, resolve_precision


def check_hardware(
    recipe: Recipe, device: Device | None = None, installed: Installed | None = None
) -> list[Finding]:
    """Precision, attention, kernels, optimizer and QLoRA against ``device`` (this machine's when not given)."""
    device = device if device is not None else detect_device()
    installed = installed if installed is not None else detect_installed()
    out = _precision_findings(recipe, device)
    if recipe.model.attn_implementation == "flash_attention_2":
        problem = flash_attention_problem(device, installed)
        if problem:
            out.append(Finding("error", "flash_attention_unavailable", problem,
                               "set model.attn_implementation: auto (flash attention where it can run, else SDPA)"))  # fmt: skip
    t = recipe.training
    if t.kernels == "liger":
        try:
            choose_kernels("liger", device, installed)
        except Exception as err:  # the same one line training would fail with
            out.append(Finding("error", "kernels_unavailable", str(err), "set training.kernels: auto"))
    problem = optimizer_problem(t.optimizer, device, installed)
    if problem:
        out.append(Finding("error", "optimizer_unavailable", problem,
                           "set training.optimizer: adamw_torch_fused (or install bitsandbytes on a CUDA machine)"))  # fmt: skip
    out += _qlora_findings(recipe, device, installed)
    return out


def _precision_findings(recipe: Recipe, device: Device) -> list[Finding]:
    out: list[Finding] = []
    problem = precision_problem(recipe.training.precision, device)
    if problem:
        out.append(Finding("error", "precision_unsupported", problem,
                           "set training.precision: auto (bf16 where supported, fp16 on older GPUs, fp32 on CPU)"))  # fmt: skip
        return out
    if recipe.model.dtype == "bfloat16" and device.is_cuda and not device.bf16:
        out.append(Finding(
            "error", "precision_unsupported",
            f"model.dtype: bfloat16 needs compute capability 8.0+ and this GPU is {device.describe()}",
            "set model.dtype: auto (fp16 weights on this GPU) or float32",
        ))  # fmt: skip
    precision = resolve_precision(recipe.training.precision, device)
    if precision == "fp16" and _model_dtype(recipe) == "bfloat16":
        out.append(Finding(
            "warning", "fp16_on_bf16_model",
            f"training in fp16 on {device.describe()}, but {recipe.model.name} was released in bf16: its "
            "activations can exceed fp16's range (65504) and turn the loss into NaN",
            "watch the first steps' loss; if it goes NaN set training.precision: fp32, or use a GPU with bf16 "
            "(compute capability 8.0+)",
        ))  # fmt: skip
    return out


def _qlora_findings(recipe: Recipe, device: Device, installed: Installed) -> list[Finding]:
    if recipe.training.method != "qlora":
        return []
    if not device.is_cuda:
        why = "training.method: qlora quantises the base model with bitsandbytes, which needs a CUDA GPU"
        fix = "set training.method: lora on this machine (same adapters, unquantised base)"
    elif "bitsandbytes" not in installed:
        why = "training.method: qlora needs the optional package 'bitsandbytes'"
        fix = f"install it with: {EXTRA_HINT['bitsandbytes']}, or set training.method: lora"
    else:
        return []
    return [Finding("error", "qlora_unavailable", why, fix)]


def _model_dtype(recipe: Recipe) -> str | None:
    """The dtype a model's config says it was saved in (``bfloat16``, ``float16``, ...), or ``None``."""
    try:
        from sftlab.estimate.params import model_config

        config = model_config(recipe.model.name, revision=recipe.model.revision)
    except Exception:  # an unreadable model is reported by the checks that load it
        return None
    dtype = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    return str(dtype).removeprefix("torch.") if dtype is not None else None
