"""GGUF → safetensors folder, once, into the cache.

transformers loads GGUF files (dequantizing them) but refuses to
``save_pretrained`` such a model; rebuilding the model from its config without
the quantization config and loading the state dict gives a plain model that
saves as safetensors. The cache key is the file's name, size and mtime, so a
changed file is converted again.
"""

from __future__ import annotations

from pathlib import Path

from sftlab.paths import sftlab_home
from sftlab.utils.atomic import atomic_path
from sftlab.utils.hashing import fingerprint
from sftlab.utils.progress import console

_MARKER = ".sftlab-converted"


def cache_folder_for(gguf: Path, name: str | None = None) -> Path:
    stat = gguf.stat()
    key = fingerprint(gguf.name, stat.st_size, int(stat.st_mtime))
    return sftlab_home() / "models" / f"{name or gguf.stem}-{key[:10]}"


def gguf_to_folder(gguf: str | Path, name: str | None = None) -> Path:
    """Return a HF folder holding the GGUF model as fp32 safetensors, converting it on first use."""
    gguf = Path(gguf).resolve()
    folder = cache_folder_for(gguf, name)
    if (folder / _MARKER).is_file():
        return folder
    console.print(f"[dim]converting {gguf.name} into {folder} (once; later loads use the cache)[/dim]")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    directory, file = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=file)
    loaded = AutoModelForCausalLM.from_pretrained(directory, gguf_file=file, dtype=torch.float32)
    config = AutoConfig.from_pretrained(directory, gguf_file=file)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = "float32"
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict(), assign=True, strict=True)
    plain.tie_weights()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    with atomic_path(folder, is_dir=True) as tmp:
        plain.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        plain.generation_config.save_pretrained(tmp)
        (tmp / _MARKER).write_text(str(gguf) + "\n")
    return folder
