"""Detect quantized base weights, which cannot take a LoRA merge as they are.

Adding ``scale·B·A`` to 4-bit (bitsandbytes) or GPTQ/AWQ integer weights would
need re-quantizing the sum, which loses most of what the adapter learned; so we
refuse, and offer to dequantize first (a full-precision model comes out).
"""

from __future__ import annotations

import json
from pathlib import Path

_BNB_PARAM_TYPES = {"Params4bit", "Int8Params"}


def config_quantization(folder: str | Path) -> str | None:
    """The quantization method named in ``config.json`` (``bitsandbytes``, ``gptq``, …), else ``None``."""
    config = Path(folder) / "config.json"
    if not config.is_file():
        return None
    quant = json.loads(config.read_text()).get("quantization_config")
    if not quant:
        return None
    return str(quant.get("quant_method", "unknown")) if isinstance(quant, dict) else "unknown"


def quantized_parameters(model) -> list[str]:
    """Names of parameters stored as bitsandbytes types (a model quantized at load time)."""
    return [name for name, p in model.named_parameters() if type(p).__name__ in _BNB_PARAM_TYPES]
