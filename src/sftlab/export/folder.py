"""Make a saved Hugging Face folder load the same way in every tool that reads it.

transformers 5.x writes things older readers miss or misread:

* the chat template only in ``chat_template.jinja``: tools that read
  ``tokenizer_config.json`` (transformers 4.x before 4.43, TGI, many scripts) find none;
  and ``tokenizer_class: TokenizersBackend``, a name 4.x refuses (``PreTrainedTokenizerFast``
  is the same class in both);
* rope settings only as ``rope_parameters``: transformers 4.x ignores that key and
  falls back to ``rope_theta`` 10000 (SmolLM2 uses 100000), running a silently wrong model.
  The 4.x top-level ``rope_theta``/``rope_scaling`` keys go beside it, and 5.x reads the
  same values back;
* peft records ``base_model_name_or_path`` as the folder the base was loaded from, a path
  in the user's cache; the public name goes there instead (``sftlab_base.json`` keeps the
  reference sftlab loads);
* an empty peft model card: :mod:`sftlab.export.card` writes ours;
* files 0600 and folders 0700 (safetensors, temporary folders): made 0644/0755.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sftlab.export.card import model_card, public_name
from sftlab.utils.atomic import make_readable, write_json, write_text


def finish_folder(
    folder: str | Path, base: str, *, facts: dict[str, Any] | None = None, extra: str = ""
) -> None:
    """Apply the fixes above to ``folder`` in place (before it is published)."""
    folder = Path(folder)
    _chat_template_in_config(folder)
    _legacy_rope(folder / "config.json")
    adapter = folder / "adapter_config.json"
    if adapter.is_file():
        config = json.loads(adapter.read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = public_name(base)
        write_json(adapter, config)
    library = "peft" if adapter.is_file() else "transformers"
    write_text(folder / "README.md", model_card(base, library=library, facts=facts, extra=extra))
    make_readable(folder)  # safetensors and mkdtemp leave 0600/0700; final/ is renamed, not atomic_path'ed


def _chat_template_in_config(folder: Path) -> None:
    config_path, jinja = folder / "tokenizer_config.json", folder / "chat_template.jinja"
    if not config_path.is_file():
        return
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if jinja.is_file() and not config.get("chat_template"):
        config["chat_template"] = jinja.read_text(encoding="utf-8")
    if (
        config.get("tokenizer_class") == "TokenizersBackend"
    ):  # 5.x's name; 4.x knows the same class by this one
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
    write_json(config_path, config)


def legacy_rope_keys(rope: dict) -> dict:
    """transformers 4.x's spelling of 5.x ``rope_parameters``.

    >>> legacy_rope_keys({"rope_theta": 100000.0, "rope_type": "default"})
    {'rope_theta': 100000.0, 'rope_scaling': None}
    >>> legacy_rope_keys({"rope_theta": 5e5, "rope_type": "llama3", "factor": 32.0})
    {'rope_theta': 500000.0, 'rope_scaling': {'rope_type': 'llama3', 'factor': 32.0}}
    """
    scaling = {k: v for k, v in rope.items() if k != "rope_theta"}
    if scaling.get("rope_type", "default") == "default":
        scaling = None
    return {"rope_theta": rope.get("rope_theta", 10000.0), "rope_scaling": scaling}


def _legacy_rope(path: Path) -> None:
    if not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    rope = config.get("rope_parameters")
    if not isinstance(rope, dict) or "rope_theta" not in rope or "full_attention" in rope:
        return
    config.update(legacy_rope_keys(rope))
    write_json(path, config)
