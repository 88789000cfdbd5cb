"""Turn a model reference into something loadable, without surprises from the network.

A reference is, in this order: an embedded default name (model or tokenizer), a
local folder with a ``config.json``, a tokenizer-only folder, a ``.gguf`` file, a hub
id. GGUF files (and embedded models, which are GGUF) are converted once into a
safetensors folder in the cache, so later loads take about a second.

A tokenizer-only reference (kind ``tokenizer``: an embedded tokenizer or a folder
with tokenizer files and no ``config.json``) is enough to render, preview and
check data; :func:`sftlab.models.load_model` refuses it in one line, since there
are no weights to train, evaluate or generate with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sftlab.errors import ModelError
from sftlab.models.embedded import EMBEDDED_MODELS, EMBEDDED_TOKENIZERS, embedded_gguf, embedded_tokenizer_dir

RUN_FINAL = "final"
"""Sub-folder of a run folder holding the trained model or adapter."""
BASE_MODEL_FILE = "sftlab_base.json"
"""Written next to an adapter: ``{"base_model": <reference>}``, so the adapter finds its base anywhere."""
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
"""Any of these in a folder without ``config.json`` makes it a tokenizer-only reference."""


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference resolved to a loadable HF folder (or a hub id with a revision)."""

    reference: str
    kind: str  # "embedded" | "folder" | "gguf" | "hub" | "run" | "tokenizer" (no weights)
    path: str  # folder path, or hub id for kind == "hub"
    revision: str | None = None

    @property
    def is_local(self) -> bool:
        return self.kind != "hub"

    @property
    def has_weights(self) -> bool:
        """False for a tokenizer-only reference: it renders and counts tokens but cannot be loaded as a model."""
        return self.kind != "tokenizer"

    @property
    def is_adapter(self) -> bool:
        """A peft adapter folder (loaded on top of its base model)."""
        return (Path(self.path) / "adapter_config.json").is_file()

    def base_reference(self) -> str:
        """The base model of an adapter: from ``sftlab_base.json``, else peft's ``base_model_name_or_path``."""
        import json

        folder = Path(self.path)
        if (folder / BASE_MODEL_FILE).is_file():
            return json.loads((folder / BASE_MODEL_FILE).read_text())["base_model"]
        return json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"]


def check_gguf(path: Path) -> None:
    """Refuse a file that is not a complete GGUF (wrong magic, truncated header or tensors) in one line."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise ModelError(f"{path}: not a GGUF file (it does not start with the GGUF magic bytes)")
    try:
        from gguf import GGUFReader

        GGUFReader(path)  # memory-maps and walks the header and tensor table: cheap, and catches truncation
    except Exception as err:  # struct.error, ValueError, IndexError from a damaged file
        raise ModelError(
            f"{path}: a damaged or truncated GGUF file ({type(err).__name__}); re-download or re-export it"
        ) from None


def resolve_model(reference: str, *, revision: str | None = None, convert: bool = True) -> ResolvedModel:
    """Resolve ``reference``; GGUF and embedded models are converted into the cache when needed."""
    from sftlab.models.convert import gguf_to_folder

    if reference in EMBEDDED_MODELS:
        gguf = embedded_gguf(reference)
        folder = gguf_to_folder(gguf, name=reference) if convert else gguf
        return ResolvedModel(reference, "embedded", str(folder))
    if reference in EMBEDDED_TOKENIZERS:
        return ResolvedModel(reference, "tokenizer", str(embedded_tokenizer_dir(reference)))
    path = Path(reference).expanduser()
    if path.is_dir() and (path / RUN_FINAL).is_dir() and not (path / "config.json").is_file():
        # A run folder: its trained model (or adapter) lives in final/.
        return ResolvedModel(reference, "run", str(path / RUN_FINAL))
    if path.is_dir():
        if (path / "adapter_config.json").is_file() or (path / "config.json").is_file():
            return ResolvedModel(reference, "folder", str(path))
        if any((path / name).is_file() for name in TOKENIZER_FILES):
            return ResolvedModel(reference, "tokenizer", str(path))
        raise ModelError(
            f"{path} is a folder without config.json, adapter_config.json or tokenizer files; "
            "it is not a Hugging Face model or tokenizer folder"
        )
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"GGUF file not found: {path}")
        check_gguf(path)
        folder = gguf_to_folder(path) if convert else path
        return ResolvedModel(reference, "gguf", str(folder))
    if reference.startswith((".", "/", "~")) or reference.count("/") > 1:
        raise ModelError(f"model path not found: {reference}")
    if "/" not in reference:
        known = ", ".join([*EMBEDDED_MODELS, *EMBEDDED_TOKENIZERS])
        raise ModelError(
            f"unknown model '{reference}': not an embedded model or tokenizer ({known}), a local folder, a .gguf file or a hub id (owner/name)"
        )
    return _resolve_hub(reference, revision)


def _resolve_hub(repo_id: str, revision: str | None) -> ResolvedModel:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=patterns, local_files_only=True)
        return ResolvedModel(repo_id, "hub", folder, revision)
    except LocalEntryNotFoundError:
        pass
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "yes"):
        raise ModelError(
            f"'{repo_id}' is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; download it on a machine "
            f"with network access (hf download {repo_id}) and copy the cache, or pass a local folder"
        )
    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=patterns)
    except Exception as err:  # network errors come in many types; all mean the same to the user
        reason = str(err).splitlines()[0][:200]
        raise ModelError(
            f"cannot download '{repo_id}' from the Hugging Face hub ({type(err).__name__}: {reason}); "
            f"check the name and the network, or pass a local folder or a .gguf file"
        ) from None
    return ResolvedModel(repo_id, "hub", folder, revision)
