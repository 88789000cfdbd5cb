"""Shared fixtures: the embedded model's real tokenizer and tiny random models built on it."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("SFTLAB_PROGRESS", "0")


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def tokenizer():
    """The embedded SmolLM2 tokenizer with its real ChatML chat template."""
    from sftlab.testing import embedded_tokenizer

    return embedded_tokenizer()


@pytest.fixture
def tiny_model(tokenizer):
    """A fresh ~0.8M-parameter Llama over the real vocabulary (fp32, seed 0)."""
    from sftlab.testing import tiny_llama

    return tiny_llama(tokenizer)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer):
    """A tiny model saved as a HF folder (safetensors + tokenizer), shared by the session."""
    from sftlab.testing import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"), tokenizer)


@pytest.fixture(scope="session")
def qwen3_tokenizer():
    """Qwen3's real tokenizer and chat template (tools, <think> reasoning), embedded; copy before changing it."""
    from sftlab.models import load_tokenizer

    return load_tokenizer("qwen3-tokenizer")


@pytest.fixture(scope="session")
def llama3_real_tokenizer():
    """Llama 3.2's real tokenizer (no chat template of its own) with the built-in llama3 template."""
    from sftlab.models import load_tokenizer
    from sftlab.render import resolve_template

    return resolve_template(load_tokenizer("llama3.2-tokenizer"), "llama3")
