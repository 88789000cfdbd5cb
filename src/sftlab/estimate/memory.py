"""GPU memory for one training step, part by part, per GPU.

Bytes per parameter (N = all parameters, T = trainable ones, Q = linear weights):

==============  ==================  ======================  =====================
part            full (bf16-mixed)   lora                    qlora
==============  ==================  ======================  =====================
weights         2·N                 2·N + 4·T (fp32 LoRA)   0.516·Q + 2·(N−Q) + 4·T
gradients       2·T                 4·T                     4·T
master copy     4·T                 —                       —
optimizer       8·T AdamW, 2·T 8-bit AdamW (two states: 4+4 or 1+1 bytes), 4·T / 1·T Lion,
                4·(rows + cols) per matrix Adafactor (factored second moment, no momentum)
==============  ==================  ======================  =====================

``optimizer`` takes ``training.optimizer``'s names (:mod:`sftlab.train.optim`), so the estimate, the
measurement and the training run mean the same optimizer.

``precision="fp32"`` makes every 2 a 4 and drops the master copy. ZeRO-1 shards
optimizer and master copy over the GPUs, ZeRO-2 also gradients, ZeRO-3 also
weights. 4-bit weights cost 0.5 byte plus the double-quantized block scales
(1/64 + 4/(64·256) byte).

Activations (what autograd keeps for backward), per layer and token, in elements
of the activation dtype, for a Llama-style block with SDPA/flash attention (no
s² attention matrix)::

    2 RMSNorms  (input, fp32 copy = 2, output)      8·h
    q, k, v before and after RoPE                   2·h + 3·kv
    attention output (input of o_proj)              h
    MLP gate, up, silu(gate), silu·up               4·I
    ------------------------------------------------------
    E = 11·h + 3·kv + 4·I      activations = L · b · s · E · bytes

With gradient checkpointing only each layer's input is kept (L·b·s·h) plus one
layer recomputed at a time (b·s·E). The loss adds the logits peak: b·s·V in the
activation dtype plus b·s·V·4 for the fp32 upcast in cross-entropy. Eager
attention (no SDPA) would add heads·s elements per token and layer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sftlab.errors import SftlabError
from sftlab.estimate.params import ParamCounts, count_params

GIB = 1024**3
GPU_SIZES_GIB = (24, 40, 80)
CUDA_CONTEXT = int(0.5 * GIB)
FRAGMENTATION = 0.10
"""Allocator slack on top of live tensors; observed 5–15% in training loops."""
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
METHODS = ("full", "lora", "qlora")


@dataclass
class MemoryEstimate:
    method: str
    seq_len: int
    batch: int
    gpus: int
    zero: int
    grad_checkpointing: bool
    optimizer: str
    precision: str
    params_total: int
    params_trainable: int
    parts: dict[str, int] = field(default_factory=dict)
    """Bytes per GPU: weights, gradients, master_weights, optimizer_states, activations, logits, overhead."""
    total: int = 0
    rule_of_thumb: dict[str, int] = field(default_factory=dict)
    verdicts: dict[str, str] = field(default_factory=dict)
    measured_peak: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate_memory(
    config,
    *,
    method: str = "lora",
    seq_len: int = 2048,
    batch: int = 1,
    gpus: int = 1,
    zero: int = 0,
    grad_checkpointing: bool | str = False,
    optimizer: str = "adamw_torch",
    lora_r: int = 16,
    target_modules: str | list[str] = "all-linear",
    precision: str = "bf16-mixed",
) -> MemoryEstimate:
    """Estimate per-GPU training memory for a transformers ``config`` (see the module docstring).

    ``grad_checkpointing="auto"`` resolves as training does on a GPU (on for full fine-tuning over ~1B).
    """
    optimizer = _check(method, optimizer, precision, zero, gpus)
    counts = count_params(config, lora_r=lora_r if method != "full" else 0, target_modules=target_modules)
    if not isinstance(grad_checkpointing, bool):
        grad_checkpointing = _auto_checkpointing(grad_checkpointing, method, counts.total)
    act_bytes = 2 if precision == "bf16-mixed" else 4
    parts = _state_bytes(counts, method, optimizer, precision)
    parts = _shard(parts, gpus, zero)
    parts["activations"] = activation_bytes(config, seq_len, batch, grad_checkpointing, act_bytes)
    parts["logits"] = logits_bytes(config, seq_len, batch, act_bytes)
    live = sum(parts.values())
    parts["overhead"] = CUDA_CONTEXT + int(FRAGMENTATION * live)
    total = sum(parts.values())
    n = counts.total
    return MemoryEstimate(
        method=method,
        seq_len=seq_len,
        batch=batch,
        gpus=gpus,
        zero=zero,
        grad_checkpointing=grad_checkpointing,
        optimizer=optimizer,
        precision=precision,
        params_total=n,
        params_trainable=n if method == "full" else counts.lora,
        parts=parts,
        total=total,
        rule_of_thumb={"full_12x": 12 * n, "full_mixed_adamw_16x": 16 * n, "full_mixed_adamw_18x": 18 * n},
        verdicts={f"{size} GB": verdict(total, size) for size in GPU_SIZES_GIB},
    )


def _auto_checkpointing(setting, method: str, n_params: int) -> bool:
    from sftlab.train.hardware import Device
    from sftlab.train.optim import auto_gradient_checkpointing

    return auto_gradient_checkpointing(setting, method, n_params, Device("cuda", "gpu"))


def _check(method: str, optimizer: str, precision: str, zero: int, gpus: int) -> str:
    """The canonical optimizer name; every problem in one error."""
    from sftlab.train.optim import ALIASES, OPTIMIZERS

    problems = []
    if method not in METHODS:
        problems.append(f"--method must be one of {', '.join(METHODS)}, not '{method}'")
    optimizer = ALIASES.get(optimizer, optimizer)
    if optimizer not in OPTIMIZERS:
        problems.append(
            f"--optimizer must be one of {', '.join(OPTIMIZERS)} (as training.optimizer), not '{optimizer}'"
        )
    if precision not in ("bf16-mixed", "fp32"):
        problems.append(f"precision must be bf16-mixed or fp32, not '{precision}'")
    if zero not in (0, 1, 2, 3):
        problems.append(f"--zero must be 0, 1, 2 or 3, not {zero}")
    if gpus < 1:
        problems.append(f"--gpus must be at least 1, not {gpus}")
    if problems:
        raise SftlabError("; ".join(problems))
    return optimizer


def _state_bytes(counts: ParamCounts, method: str, optimizer: str, precision: str) -> dict[str, int]:
    """Weights, gradients, master copy and optimizer states, unsharded."""
    from sftlab.train.optim import STATE_BYTES

    p = 2 if precision == "bf16-mixed" else 4
    n, t = counts.total, counts.lora
    trained, factored = (n, counts.factored) if method == "full" else (t, counts.lora_factored)
    states = int(STATE_BYTES[optimizer] * trained) + (4 * factored if optimizer == "adafactor" else 0)
    if method == "full":
        master = 4 * n if precision == "bf16-mixed" else 0
        return {"weights": p * n, "gradients": p * n, "master_weights": master, "optimizer_states": states}
    # peft keeps adapter weights in fp32 even when the base is bf16 or 4-bit.
    base = p * n if method == "lora" else int(NF4_BYTES * counts.linear) + p * (n - counts.linear)
    return {"weights": base + 4 * t, "gradients": 4 * t, "master_weights": 0, "optimizer_states": states}


def _shard(parts: dict[str, int], gpus: int, zero: int) -> dict[str, int]:
    sharded = {1: ("optimizer_states", "master_weights"), 2: ("gradients",), 3: ("weights",)}
    out = dict(parts)
    for stage in range(1, zero + 1):
        for key in sharded[stage]:
            out[key] = -(-out[key] // gpus)
    return out


def _dims(config) -> tuple[int, int, int, int, int]:
    h = config.hidden_size
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    inter = getattr(config, "intermediate_size", None) or 4 * h
    return config.num_hidden_layers, h, kv_heads * head_dim, inter, config.vocab_size


def activation_bytes(config, seq_len: int, batch: int, grad_checkpointing: bool, bytes_per: int = 2) -> int:
    """Activations kept for backward (see the module docstring for the per-token formula)."""
    layers, h, kv, inter, _ = _dims(config)
    per_token_layer = 11 * h + 3 * kv + 4 * inter
    tokens = batch * seq_len
    if grad_checkpointing:
        return tokens * (layers * h + per_token_layer) * bytes_per
    return tokens * layers * per_token_layer * bytes_per


def logits_bytes(config, seq_len: int, batch: int, bytes_per: int = 2) -> int:
    """The loss peak: logits in the activation dtype plus their fp32 upcast for cross-entropy."""
    vocab = _dims(config)[4]
    extra_upcast = 4 if bytes_per != 4 else 0
    return batch * seq_len * vocab * (bytes_per + extra_upcast)


def verdict(total: int, size_gib: int) -> str:
    """``fits`` below 90% of the card, ``tight`` up to 100%, else ``does not fit``."""
    if total <= 0.9 * size_gib * GIB:
        return "fits"
    return "tight" if total <= size_gib * GIB else "does not fit"
