"""GPU memory estimates for training, from the model config alone (meta device, no weights)."""

from sftlab.estimate.memory import MemoryEstimate, activation_bytes, estimate_memory, logits_bytes
from sftlab.estimate.params import ParamCounts, count_params, model_config

__all__ = [
    "MemoryEstimate",
    "ParamCounts",
    "activation_bytes",
    "count_params",
    "estimate_memory",
    "logits_bytes",
    "model_config",
]
