"""Parameter counts from a model's config alone: the model is built on the meta device, no weights loaded.

That makes a 70B hub model cost a few kilobytes of ``config.json`` to estimate.
LoRA's trainable count is exact: r·(in + out) for every targeted linear layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sftlab.errors import ModelError


@dataclass(frozen=True)
class ParamCounts:
    total: int
    """Every parameter of the base model (tied weights counted once)."""
    linear: int
    """Weights of the linear layers a 4-bit quantizer would convert (all but the output head)."""
    lora: int
    """Trainable LoRA parameters for the requested targets and rank (0 when not asked)."""
    lora_modules: int
    factored: int = 0
    """Adafactor's state for training every weight: rows + columns of each matrix, every element of a vector."""
    lora_factored: int = 0
    """The same for the LoRA matrices only (r + in and out + r per adapted layer)."""


def model_config(reference: str, *, revision: str | None = None, trust_remote_code: bool = False):
    """The transformers config of a reference: embedded name, folder, adapter/run (its base), or hub id.

    Hub ids fetch only ``config.json``; weights are never downloaded.
    """
    from transformers import AutoConfig

    from sftlab.models.embedded import EMBEDDED_MODELS
    from sftlab.models.resolve import resolve_model

    path = Path(reference).expanduser()
    if reference in EMBEDDED_MODELS or path.exists() or reference.endswith(".gguf"):
        resolved = resolve_model(reference)
        if resolved.is_adapter:
            return model_config(resolved.base_reference(), trust_remote_code=trust_remote_code)
        location = resolved.path
    else:
        location = reference
    try:
        return AutoConfig.from_pretrained(location, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot read the config of '{reference}': {str(err).splitlines()[0]}") from None


def meta_model(config):
    """The model skeleton on the meta device: shapes without memory."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def count_params(config, *, lora_r: int = 0, target_modules: str | list[str] = "all-linear") -> ParamCounts:
    """Counts for ``config``; ``target_modules`` is ``all-linear`` or module names (``q_proj``, …)."""
    import torch

    model = meta_model(config)
    total = sum(p.numel() for p in model.parameters())
    factored = sum(sum(p.shape[-2:]) if p.dim() >= 2 else p.numel() for p in model.parameters())
    head = model.get_output_embeddings()
    linear = lora = modules = lora_factored = 0
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or module is head:
            continue
        linear += module.weight.numel()
        targeted = target_modules == "all-linear" or name.rsplit(".", 1)[-1] in target_modules
        if lora_r and targeted:
            lora += lora_r * (module.in_features + module.out_features)
            lora_factored += 2 * lora_r + module.in_features + module.out_features
            modules += 1
    return ParamCounts(total, linear, lora, modules, factored, lora_factored)
