"""``sftlab export --format gguf``: a folder with the GGUF, an Ollama Modelfile, a model card and a manifest.

::

    out/
      <name>-<quant>.gguf     llama.cpp / Ollama / LM Studio
      Modelfile               ollama create <name> -f out/Modelfile
      README.md               model card
      sftlab_export.json      what was exported and how it was checked
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from sftlab.export.card import model_card
from sftlab.export.gguf import write_gguf
from sftlab.export.ollama import build_modelfile
from sftlab.utils.atomic import atomic_path, write_json, write_text

MANIFEST = "sftlab_export.json"


def save_gguf_folder(
    model, tokenizer, out: Path, quant: str, result, *, base: str | None, facts: dict
) -> object:
    """Write the folder above atomically; ``result`` (an ``ExportResult``) gets the GGUF fields."""
    stem = _stem((facts.get("recipe") or {}).get("name") or out.resolve().name)
    gguf_name = f"{stem}-{quant}.gguf"
    with atomic_path(out, is_dir=True) as tmp:
        info = write_gguf(model, tokenizer, tmp / gguf_name, quant, name=stem)
        modelfile = build_modelfile(tokenizer, gguf_name, info.eot_ids, adds_bos=info.adds_bos)
        write_text(tmp / "Modelfile", modelfile.text)
        result.format, result.quant, result.gguf_file = "gguf", quant, gguf_name
        result.gguf_tensors, result.gguf_fallback_f16 = info.tensors, info.fallback_f16
        result.stop_tokens = modelfile.stops
        result.modelfile_template = modelfile.template is not None
        result.notes += [modelfile.note] if modelfile.note else []
        usage = (
            "## Use\n\n"
            f"- Ollama: `ollama create {stem} -f Modelfile` then `ollama run {stem}`\n"
            f"- llama.cpp: `llama-cli -m {gguf_name} -cnv`\n"
            f"\nGGUF `{quant}`, architecture `{info.architecture}`, context length {info.context_length}, "
            f"stop tokens {', '.join(f'`{s}`' for s in modelfile.stops)}."
        )
        write_text(
            tmp / "README.md", model_card(base or result.source, library="gguf", facts=facts, extra=usage)
        )
        result.files = sorted(p.name for p in tmp.iterdir()) + [MANIFEST]
        write_json(tmp / MANIFEST, asdict(result))
    return result


def _stem(name: str) -> str:
    """A file name from the recipe's name, else the output folder's.

    >>> _stem("support bot/v2")
    'support-bot-v2'
    """
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.") or "model"
