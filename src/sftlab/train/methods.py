"""Model preparation per method: which parameters train, and how.

=============  ======================================================
``full``       every weight
``freeze``     the last N transformer blocks (+ named modules)
``lora``       low-rank adapters (rsLoRA, DoRA, PiSSA init via peft)
``qlora``      LoRA on a 4/8-bit quantised base (CUDA + bitsandbytes)
``prompt_*``   a learned soft prompt (prompt tuning / P-tuning)
=============  ======================================================
"""

from __future__ import annotations

import re
from typing import Any

from sftlab.errors import MissingDependencyError, SftlabError
from sftlab.recipe.sections.training import TrainingSection
from sftlab.train.fast_dropout import use_fast_dropout

ADAPTER_METHODS = ("lora", "qlora", "prompt_tuning", "p_tuning")


def is_quantized(model) -> bool:
    """A model loaded with 4/8-bit (or other) quantised weights."""
    return bool(
        getattr(model, "is_quantized", False)
        or getattr(model, "is_loaded_in_4bit", False)
        or getattr(model, "is_loaded_in_8bit", False)
        or getattr(getattr(model, "config", None), "quantization_config", None)
    )


def quantization_load_kwargs(cfg: TrainingSection) -> dict[str, Any]:
    """``from_pretrained`` kwargs for QLoRA; a clear error where it cannot run."""
    import torch

    if cfg.method != "qlora":
        return {}
    if not torch.cuda.is_available():
        raise SftlabError(
            "training.method: qlora quantises the base model with bitsandbytes, which needs a CUDA GPU; "
            "on this machine use method: lora (same adapters, unquantised base)"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "bitsandbytes", "QLoRA (training.method: qlora)", "pip install 'sftlab[gpu]'"
        ) from None
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if cfg.quant.bits == 4:
        bnb = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=cfg.quant.double_quant,
            bnb_4bit_compute_dtype=compute,
        )
    else:
        bnb = BitsAndBytesConfig(load_in_8bit=True)
    return {"quantization_config": bnb, "device_map": {"": torch.cuda.current_device()}}


def prepare_model(model, cfg: TrainingSection, tokenizer=None, *, gradient_checkpointing: bool | None = None):
    """Set which parameters train for ``cfg.method``; returns the model to train (maybe peft-wrapped).

    ``gradient_checkpointing`` is the resolved setting (:class:`sftlab.train.setup.TrainingSetup`); when not
    given, ``cfg.gradient_checkpointing`` is resolved here for this machine.
    """
    if is_quantized(model) and cfg.method in ("full", "freeze"):
        raise SftlabError(
            f"training.method: {cfg.method} would update weights that are stored quantised (4/8-bit), where "
            "small updates round away and the optimizer cannot step; train adapters on top instead "
            "(method: qlora), or load the model unquantised"
        )
    if gradient_checkpointing is None:
        from sftlab.train.hardware import detect_device
        from sftlab.train.optim import auto_gradient_checkpointing

        n_params = sum(p.numel() for p in model.parameters())
        gradient_checkpointing = auto_gradient_checkpointing(
            cfg.gradient_checkpointing, cfg.method, n_params, detect_device()
        )
    if gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if cfg.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if cfg.method == "freeze":
        return _freeze(model, cfg)
    if cfg.method in ("lora", "qlora"):
        return _lora(model, cfg, gradient_checkpointing)
    return _prompt(model, cfg, tokenizer)


def enable_gradient_checkpointing(model) -> None:
    """Non-reentrant checkpointing (``use_reentrant=False``): works with frozen inputs (adapters) without
    ``enable_input_require_grads``, and with the varlen keyword arguments of padding-free rows."""
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False


def trainable_summary(model) -> tuple[int, int]:
    """(trainable parameters, all parameters)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def _freeze(model, cfg: TrainingSection):
    layers = _block_count(model)
    n = min(cfg.freeze.trainable_layers, layers)
    keep = {str(i) for i in range(layers - n, layers)}
    block = re.compile(r"\.layers\.(\d+)\.")
    trained = 0
    for name, p in model.named_parameters():
        m = block.search(name)
        on = bool(m and m.group(1) in keep) or any(s in name for s in cfg.freeze.trainable_modules)
        p.requires_grad_(on)
        trained += on
    if not trained:
        raise SftlabError(
            "training.freeze: nothing left to train; set trainable_layers > 0 or name modules in "
            "trainable_modules (for example [lm_head])"
        )
    return model


def _block_count(model) -> int:
    n = getattr(model.config, "num_hidden_layers", None)
    if n is None:
        raise SftlabError("training.method: freeze needs a model whose config has num_hidden_layers")
    return int(n)


def _lora(model, cfg: TrainingSection, gradient_checkpointing: bool):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if cfg.method == "qlora":
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    lora = cfg.lora
    init: Any = {"default": True, "gaussian": "gaussian", "pissa": "pissa"}[lora.init]
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        use_rslora=lora.use_rslora,
        use_dora=lora.use_dora,
        init_lora_weights=init,
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        model = get_peft_model(model, config)
    except ValueError as err:
        raise SftlabError(
            f"training.lora.target_modules: {str(err).splitlines()[0]}; use all-linear or names such as "
            "[q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]"
        ) from None
    use_fast_dropout(model)
    return model


def _prompt(model, cfg: TrainingSection, tokenizer):
    from peft import (
        PromptEncoderConfig,
        PromptTuningConfig,
        PromptTuningInit,
        get_peft_model,
    )

    p = cfg.prompt
    if cfg.method == "prompt_tuning":
        kwargs: dict[str, Any] = {"prompt_tuning_init": PromptTuningInit.RANDOM}
        if p.init_text:
            if tokenizer is None:
                raise SftlabError("training.prompt.init_text needs the tokenizer")
            kwargs = {
                "prompt_tuning_init": PromptTuningInit.TEXT,
                "prompt_tuning_init_text": p.init_text,
                "tokenizer_name_or_path": tokenizer.name_or_path,
            }
        config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=p.num_virtual_tokens, **kwargs)
    else:
        config = PromptEncoderConfig(
            task_type="CAUSAL_LM",
            num_virtual_tokens=p.num_virtual_tokens,
            encoder_hidden_size=p.encoder_hidden_size,
        )
    return get_peft_model(model, config)
