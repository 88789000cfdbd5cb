"""``training:`` — method and hyperparameters, evaluation during training, mixing, forgetting control."""

from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import Field, field_validator

from sftlab.recipe.base import Section
from sftlab.recipe.sections.data import SourceSection

OptimizerName = Literal[
    "adamw_torch",
    "adamw_torch_fused",
    "adamw_8bit",
    "adamw_bnb_8bit",
    "paged_adamw_8bit",
    "paged_adamw_32bit",
    "adafactor",
    "lion_8bit",
    "paged_lion_8bit",
    "lion_32bit",
    "sgd",
]
"""``training.optimizer`` names: the HF Trainer's own (``TrainingArguments.optim``), those we test."""


class LoraSection(Section):
    r: int = Field(default=16, ge=1)
    """LoRA rank."""
    alpha: float = 32
    """LoRA scaling numerator (scale = alpha / r, or alpha / sqrt(r) with rsLoRA)."""
    dropout: float = Field(default=0.05, ge=0, lt=1)
    """Dropout on the adapter input."""
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    """Module names to adapt, or ``all-linear`` (every linear layer but the output head)."""
    use_rslora: bool = False
    """Rank-stabilised scaling alpha / sqrt(r): keeps updates from shrinking at high rank."""
    use_dora: bool = False
    """Weight-decomposed LoRA (magnitude and direction trained apart); slower per step."""
    init: Literal["default", "pissa", "gaussian"] = "default"
    """Adapter initialisation; ``pissa`` starts from the principal singular vectors."""
    loraplus_lr_ratio: float | None = Field(default=None, gt=0)
    """LoRA+: learning rate of B = ratio × learning rate of A (16 in the paper)."""


class QuantSection(Section):
    bits: Literal[4, 8] = 4
    """QLoRA base weights: 4-bit NF4 (the QLoRA paper) or 8-bit."""
    double_quant: bool = True
    """Quantise the quantisation constants too (saves ~0.4 bit per parameter)."""


class FreezeSection(Section):
    trainable_layers: int = Field(default=2, ge=0)
    """``method: freeze`` trains the last N transformer blocks (0: only ``trainable_modules``)."""
    trainable_modules: list[str] = Field(default_factory=list)
    """Extra parameter-name substrings to train (for example ``lm_head`` or ``norm``)."""


class PromptTuningSection(Section):
    num_virtual_tokens: int = Field(default=20, ge=1)
    """Learned soft-prompt length."""
    init_text: str | None = None
    """Initialise prompt tuning from this text's embeddings (random when unset)."""
    encoder_hidden_size: int = Field(default=128, ge=1)
    """``p_tuning``: hidden size of the prompt encoder MLP."""


class EwcSection(Section):
    lam: float = Field(default=0.0, ge=0)
    """EWC strength λ in λ·Σ F·(θ-θ₀)²; 0 turns EWC off. Start around 1e2-1e4 and watch retention."""
    source: SourceSection | None = None
    """General data for the Fisher estimate; when unset, the sources marked ``general: true`` are used."""
    fisher_batches: int = Field(default=8, ge=1)
    """Batches of general data used to estimate the diagonal Fisher information."""


Tracker = Literal[
    "tensorboard", "wandb", "mlflow", "comet_ml", "clearml", "neptune", "dvclive", "swanlab", "trackio",
    "azure_ml", "dagshub", "codecarbon", "flyte", "kubeflow",
]  # fmt: skip
"""The HF Trainer's integrations (``TrainingArguments.report_to``)."""
_TRACKER_PACKAGES = {"azure_ml": "azureml", "flyte": "flytekit", "kubeflow": "kfp"}
"""Trackers whose import name differs from their ``report_to`` name."""


class TrainingSection(Section):
    method: Literal["full", "freeze", "lora", "qlora", "prompt_tuning", "p_tuning"] = "lora"
    """What is trained: all weights, the last blocks, low-rank adapters (QLoRA on a 4/8-bit base), or a soft prompt."""
    stage: Literal["auto", "sft", "pretrain"] = "auto"
    """``pretrain`` trains every token of plain text (packed); ``auto`` picks it when all records are text."""
    lr: float | None = Field(default=None, gt=0)
    """Peak learning rate; default depends on the method (LoRA 2e-4, full 1e-5, prompt tuning 3e-2)."""
    epochs: float = Field(default=2, gt=0)
    """Passes over the (mixed) training data."""
    batch_size: int = Field(default=4, ge=1)
    """Per-device micro-batch size."""
    grad_accum: int = Field(default=1, ge=1)
    """Micro-batches accumulated per optimizer step."""
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1)
    """Share of the steps spent warming the learning rate up from 0."""
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    """Learning-rate decay after warm-up."""
    weight_decay: float = Field(default=0.0, ge=0)
    """AdamW decoupled weight decay."""
    max_grad_norm: float = Field(default=1.0, gt=0)
    """Gradient clipping norm."""
    max_steps: int | None = Field(default=None, ge=1)
    """Stop after this many optimizer steps (overrides epochs)."""
    gradient_checkpointing: bool | Literal["auto"] = "auto"
    """Recompute activations in the backward pass: less memory, ~30% slower. ``auto``: on for full
    fine-tuning of models over ~1B parameters on a GPU, off otherwise."""
    optimizer: OptimizerName = "adamw_torch_fused"
    """HF Trainer optimizer name; 8-bit, paged and Lion ones need bitsandbytes and a CUDA GPU."""
    kernels: Literal["auto", "liger", "none"] = "auto"
    """Fused kernels: ``liger`` (RMSNorm, RoPE, SwiGLU, fused linear cross-entropy; CUDA + liger-kernel),
    ``none`` (our chunked trained-positions loss); ``auto`` picks liger where it can run."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """``auto``: bf16 where supported, fp16 on older GPUs, fp32 on CPU."""
    eval_steps: int | None = Field(default=None, ge=1)
    """Evaluate every N optimizer steps; default: about 10 evaluations per run."""
    save_steps: int | None = Field(default=None, ge=1)
    """Save a checkpoint every N steps; default: at every evaluation (needed to keep the best one)."""
    save_total_limit: int | None = Field(default=3, ge=1)
    """Checkpoints kept on disk (the best one is always kept)."""
    early_stopping_patience: int | None = Field(default=None, ge=1)
    """Stop after this many evaluations without a better eval loss; unset: never stop early."""
    early_stopping_threshold: float = Field(default=0.0, ge=0)
    """Smallest eval-loss decrease that counts as an improvement."""
    logging_steps: int = Field(default=1, ge=1)
    """Log train loss, learning rate and tokens/s every N steps (to metrics.jsonl)."""
    report_to: list[Tracker] = Field(default_factory=lambda: ["tensorboard"])
    """Experiment trackers the HF Trainer logs to (train and eval losses, learning rate); TensorBoard event
    files go to ``train/tensorboard``; the others read their own settings (``WANDB_PROJECT``, ``MLFLOW_TRACKING_URI``)
    and need their package installed; ``[]`` logs to none."""

    @field_validator("report_to")
    @classmethod
    def _trackers_installed(cls, value: list[str]) -> list[str]:
        """A tracker without its package would fail only when the Trainer starts; say so at recipe load."""
        packages = {name: _TRACKER_PACKAGES.get(name, name) for name in value if name != "tensorboard"}
        missing = [pkg for pkg in packages.values() if importlib.util.find_spec(pkg) is None]
        if missing:
            raise ValueError(
                f"{', '.join(missing)} not installed; pip install {' '.join(missing)} or remove it"
            )
        return list(dict.fromkeys(value))

    task_upsample: dict[str, float] = Field(default_factory=dict)
    """Per-task repetition factor on top of source weights (``{rare_task: 3}`` shows each such record 3× per epoch)."""
    resume: bool = False
    """Continue from the last checkpoint in ``output_dir/checkpoints`` (same as ``--resume``)."""
    num_workers: int = Field(default=0, ge=0)
    """DataLoader worker processes."""
    lora: LoraSection = Field(default_factory=LoraSection)
    """LoRA/QLoRA adapter settings."""
    quant: QuantSection = Field(default_factory=QuantSection)
    """QLoRA quantisation of the base weights."""
    freeze: FreezeSection = Field(default_factory=FreezeSection)
    """``method: freeze`` settings."""
    prompt: PromptTuningSection = Field(default_factory=PromptTuningSection)
    """``prompt_tuning``/``p_tuning`` settings."""
    ewc: EwcSection = Field(default_factory=EwcSection)
    """Elastic weight consolidation against forgetting general ability."""
