"""The model a training run starts from: loaded (or quantized) on the CPU for the Trainer to place, the PiSSA
initial adapter kept, and the EWC penalty built from general data. Split out of ``run.py``."""

from __future__ import annotations

import os
from pathlib import Path

from sftlab.errors import SftlabError
from sftlab.recipe.schema import Recipe


def load_training_model(recipe: Recipe, precision: str):
    """The recipe's model in the dtype its precision and method need, on the CPU (the Trainer places it)."""
    from sftlab.models import load_model
    from sftlab.train.methods import quantization_load_kwargs
    from sftlab.train.precision import load_dtype

    t = recipe.training
    m = recipe.model
    dtype = m.dtype if m.dtype != "auto" else load_dtype(precision, t.method)
    quant = quantization_load_kwargs(t)
    if quant:
        return _load_quantized(recipe, dtype, quant)
    # Loaded on the CPU: the Trainer (or accelerate's FSDP/DeepSpeed wrappers) places it per process.
    # A LoRA run or adapter as the starting point (SFT after continued pre-training) is folded into its
    # base first, so the new adapter trains on those weights instead of being stacked on a PeftModel.
    model = load_model(
        m.name,
        dtype=dtype,
        device="cpu",
        revision=m.revision,
        trust_remote_code=m.trust_remote_code,
        attn_implementation=m.attn_implementation,
        merge_adapter=True,
    )
    if type(model).__module__.startswith("peft"):
        raise SftlabError(
            f"model.name: {m.name} is a prompt-tuning adapter, which cannot be folded into its base; start "
            "from the base model, or from a LoRA/full run"
        )
    return model


def _load_quantized(recipe: Recipe, dtype: str, quant: dict):
    from transformers import AutoModelForCausalLM

    from sftlab.models import pick_dtype, resolve_model

    m = recipe.model
    resolved = resolve_model(m.name, revision=m.revision)
    return AutoModelForCausalLM.from_pretrained(
        resolved.path,
        revision=resolved.revision,
        dtype=pick_dtype(dtype),
        use_safetensors=True,
        trust_remote_code=m.trust_remote_code,
        **quant,
    )


def save_pissa_init(model, run_dir: Path) -> Path:
    """PiSSA rewrites the base weights; keep the initial adapter to convert the final one back to plain LoRA."""
    init_dir = run_dir / "cache" / "pissa_init"
    if int(os.environ.get("RANK", "0")) == 0:
        cfg = model.peft_config["default"]
        init, cfg.init_lora_weights = cfg.init_lora_weights, True
        model.save_pretrained(init_dir, safe_serialization=True)
        cfg.init_lora_weights = init
    return init_dir


def build_run_ewc(recipe: Recipe, model, general: list[dict], collator):
    from sftlab.train.ewc import build_ewc

    if not general:
        raise SftlabError(
            "training.ewc.lam > 0 needs general data for the Fisher estimate: set training.ewc.source or mark a "
            "data source with general: true"
        )
    sharded = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true") or (
        os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3"
    )
    if sharded:
        raise SftlabError(
            "training.ewc needs every parameter whole on each process; it does not run under FSDP or DeepSpeed "
            "ZeRO-3 (use DDP or ZeRO-2, or set training.ewc.lam: 0)"
        )
    b = recipe.training.batch_size
    batches = (collator(general[i : i + b]) for i in range(0, len(general), b))
    ewc = build_ewc(model, batches, recipe.training.ewc.lam, recipe.training.ewc.fisher_batches)
    return ewc
