"""``sftlab export``: merge a LoRA adapter into its base (W' = W0 + scale·B·A) or re-save the adapter.

The merge uses peft's ``merge_and_unload`` and is then checked two ways before
anything is written: a few rows of every merged weight against our own
``W0 + scale·B·A``, and the logits of a probe sentence against the
adapter-applied model. The output is a plain Hugging Face folder (safetensors,
config, tokenizer with its chat template, generation config) that loads with
transformers alone, written atomically, and made readable by other tools too
(:mod:`sftlab.export.folder`: chat template in ``tokenizer_config.json``, 4.x rope keys,
the base model's public name, a model card). ``format="gguf"`` writes the same model as a
GGUF with an Ollama Modelfile instead (:mod:`sftlab.export.gguf_folder`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sftlab.errors import ModelError, SftlabError
from sftlab.export.card import adapter_facts, run_facts
from sftlab.export.folder import finish_folder
from sftlab.export.gguf import QUANTS, check_supported
from sftlab.export.quantized import config_quantization, quantized_parameters
from sftlab.models.resolve import BASE_MODEL_FILE, resolve_model
from sftlab.utils.atomic import atomic_path, write_json
from sftlab.utils.progress import console

PROBE_TEXT = "The quick brown fox jumps over the lazy dog. 1 2 3"
MANIFEST = "sftlab_export.json"
WEIGHT_TOLERANCE = 1e-5
LOGIT_TOLERANCE = 1e-3
"""fp32 merges agree to ~1e-6; anything above this means the merge went wrong."""


@dataclass
class ExportResult:
    out: str
    mode: str  # "merged" | "adapter" | "copied"
    source: str
    base_model: str | None = None
    merged_modules: int = 0
    max_weight_error: float = 0.0
    max_logit_error: float = 0.0
    dtype: str = "float32"
    files: list[str] = field(default_factory=list)
    format: str = "hf"
    quant: str | None = None
    gguf_file: str | None = None
    gguf_tensors: int = 0
    gguf_fallback_f16: list[str] = field(default_factory=list)
    stop_tokens: list[str] = field(default_factory=list)
    modelfile_template: bool = False
    notes: list[str] = field(default_factory=list)


EXPORT_DTYPES = ("auto", "float32", "bfloat16", "float16")
EXPORT_FORMATS = ("hf", "gguf")


def export_model(
    source: str,
    out: str | Path,
    *,
    adapter_only: bool = False,
    dequantize: bool = False,
    dtype: str = "auto",
    format: str = "hf",
    quant: str = "f16",
) -> ExportResult:
    """Export ``source`` (run folder, adapter folder or model) to ``out``; see the module docstring."""
    from sftlab.models import load_tokenizer

    _check_options(dtype, format, quant, adapter_only)
    resolved = resolve_model(source)
    tokenizer = load_tokenizer(resolved)
    facts = run_facts(source) if resolved.kind == "run" else {}
    if not facts.get("recipe"):  # an adapter folder, or a run without its recipe: the adapter's own config
        facts.update(adapter_facts(resolved.path))
    if adapter_only:
        if not resolved.is_adapter:
            raise ModelError(f"'{source}' holds full model weights, not a LoRA adapter; drop --adapter-only")
        return _export_adapter(resolved, tokenizer, Path(out), facts)
    base = resolved.base_reference() if resolved.is_adapter else None
    # A full fine-tune's final/ names its base in sftlab_base.json; the card credits that model.
    card_base = base or (
        resolved.base_reference() if (Path(resolved.path) / BASE_MODEL_FILE).is_file() else resolved.reference
    )
    if format == "gguf":
        _check_gguf_architecture(resolve_model(base).path if base else resolved.path, quant)
    if resolved.is_adapter:
        model, result = _merge(resolved, tokenizer, Path(out), dequantize=dequantize)
    else:
        model, result = _load_full(resolved, Path(out), "float32" if format == "gguf" else dtype)
    if format == "gguf":
        from sftlab.export.gguf_folder import save_gguf_folder

        return save_gguf_folder(model, tokenizer, Path(out), quant, result, base=card_base, facts=facts)
    if resolved.is_adapter:
        model = model.to(_target_dtype(resolve_model(base).path, dtype))
        model.config.dtype = result.dtype = str(model.dtype).removeprefix("torch.")
    return _save_full(model, tokenizer, Path(out), result, card_base, facts)


def _check_options(dtype: str, format: str, quant: str, adapter_only: bool) -> None:
    """Every bad option at once, each naming its flag."""
    problems = []
    if dtype not in EXPORT_DTYPES:
        problems.append(f"--dtype {dtype}: choose one of {', '.join(EXPORT_DTYPES)}")
    if format not in EXPORT_FORMATS:
        problems.append(f"--format {format}: choose one of {', '.join(EXPORT_FORMATS)}")
    if quant not in QUANTS:
        problems.append(f"--quant {quant}: choose one of {', '.join(QUANTS)}")
    if format == "gguf" and adapter_only:
        problems.append("--adapter-only writes a peft folder; it cannot be combined with --format gguf")
    if problems:
        raise SftlabError("; ".join(problems))


def _check_gguf_architecture(folder: str, quant: str) -> None:
    """Refuse an unsupported architecture before minutes of loading and merging."""
    import json
    from types import SimpleNamespace

    config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    check_supported(SimpleNamespace(model_type=config.get("model_type")), quant)


def _merge(resolved, tokenizer, out: Path, *, dequantize: bool) -> tuple[Any, ExportResult]:
    import torch
    from peft import PeftModel

    from sftlab.models import load_model

    base_ref = resolved.base_reference()
    base_resolved = resolve_model(base_ref)
    method = config_quantization(base_resolved.path)
    if method and not dequantize:
        raise ModelError(
            f"the base model '{base_ref}' is quantized ({method}); a LoRA merge into quantized weights would "
            "have to re-quantize W0 + scale·B·A and lose most of the adapter. Pass --dequantize to merge into "
            "dequantized full-precision weights (bigger output), or export with --adapter-only"
        )
    base = load_model(base_resolved, dtype="float32" if not method else "auto", device="cpu")
    if method or quantized_parameters(base):
        base = _dequantized(base, base_ref)
    model = PeftModel.from_pretrained(base, resolved.path, is_trainable=False).eval()
    probe = tokenizer(PROBE_TEXT, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        expected_logits = model(input_ids=probe).logits.float()
    expected_rows = _expected_rows(model)
    console.print(f"[dim]merging {len(expected_rows)} LoRA modules into {base_ref}[/dim]")
    merged = model.merge_and_unload()
    weight_error = _weight_error(merged, expected_rows)
    with torch.inference_mode():
        logit_error = float((merged(input_ids=probe).logits.float() - expected_logits).abs().max())
    if weight_error > WEIGHT_TOLERANCE or logit_error > LOGIT_TOLERANCE:
        raise SftlabError(
            f"the merged model does not match the adapter-applied model (weights differ by {weight_error:.2e}, "
            f"logits by {logit_error:.2e}); nothing was written. Please report this with the adapter's config"
        )
    result = ExportResult(
        out=str(out),
        mode="merged",
        source=resolved.reference,
        base_model=base_ref,
        merged_modules=len(expected_rows),
        max_weight_error=weight_error,
        max_logit_error=logit_error,
    )
    return merged, result


def _expected_rows(model, rows: int = 4) -> dict[str, Any]:
    """For each LoRA module, the first ``rows`` rows of W0 + scale·B·A, computed here rather than by peft."""
    from peft.tuners.lora import LoraLayer

    expected = {}
    for name, module in model.named_modules():
        if not isinstance(module, LoraLayer):
            continue
        for adapter in module.active_adapters:
            if adapter not in module.lora_A or module.use_dora.get(adapter, False):
                continue  # DoRA rescales W0 as well; the logit check covers it
            a = module.lora_A[adapter].weight.float()
            b = module.lora_B[adapter].weight.float()
            delta = module.scaling[adapter] * (b @ a)
            if getattr(module, "fan_in_fan_out", False):
                delta = delta.T
            w0 = module.get_base_layer().weight.float()
            key = name.removeprefix("base_model.model.")
            expected[key] = (w0 + delta)[:rows].detach().clone()
    return expected


def _weight_error(merged, expected: dict[str, Any]) -> float:
    modules = dict(merged.named_modules())
    error = 0.0
    for name, rows in expected.items():
        weight = modules[name].weight.float()[: rows.shape[0]]
        error = max(error, float((weight - rows).abs().max()))
    return error


def _dequantized(base, base_ref: str):
    """Full-precision copy of a bitsandbytes/GPTQ model (transformers' ``dequantize``)."""
    if not hasattr(base, "dequantize"):
        raise ModelError(
            f"cannot dequantize '{base_ref}' with this transformers version; merge is not possible"
        )
    try:
        return base.dequantize()
    except Exception as err:  # each quantizer raises its own error types
        raise ModelError(f"dequantizing '{base_ref}' failed ({type(err).__name__}: {err})") from None


def _target_dtype(base_folder: str, dtype: str):
    """``auto``: the dtype the base model was published in (fp32 when it does not say)."""
    import json

    from sftlab.models import pick_dtype

    if dtype != "auto":
        return pick_dtype(dtype)
    config = json.loads((Path(base_folder) / "config.json").read_text())
    name = config.get("dtype") or config.get("torch_dtype") or "float32"
    return pick_dtype(name if name in ("float32", "bfloat16", "float16") else "float32")


def _load_full(resolved, out: Path, dtype: str) -> tuple[Any, ExportResult]:
    from sftlab.models import load_model

    model = load_model(resolved, dtype="float32" if dtype == "auto" else dtype, device="cpu")
    if dtype == "auto":
        model = model.to(_target_dtype(resolved.path, "auto"))
    result = ExportResult(out=str(out), mode="copied", source=resolved.reference, dtype=str(model.dtype)[6:])
    return model, result


def _save_full(model, tokenizer, out: Path, result: ExportResult, base: str, facts: dict) -> ExportResult:
    with atomic_path(out, is_dir=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        finish_folder(tmp, base, facts=facts)
        result.files = sorted(p.name for p in tmp.iterdir()) + [MANIFEST]
        write_json(tmp / MANIFEST, asdict(result))
    return result


def _export_adapter(resolved, tokenizer, out: Path, facts: dict) -> ExportResult:
    from peft import PeftModel

    from sftlab.models import load_model

    base_ref = resolved.base_reference()
    base = load_model(base_ref, dtype="float32", device="cpu")
    model = PeftModel.from_pretrained(base, resolved.path, is_trainable=False)
    local = Path(base_ref).expanduser()
    # A relative base path would break once the adapter moves; record it absolute.
    portable_ref = str(local.resolve()) if local.exists() else base_ref
    result = ExportResult(out=str(out), mode="adapter", source=resolved.reference, base_model=portable_ref)
    with atomic_path(out, is_dir=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / BASE_MODEL_FILE, {"base_model": portable_ref})
        finish_folder(tmp, base_ref, facts=facts)
        result.files = sorted(p.name for p in tmp.iterdir()) + [MANIFEST]
        write_json(tmp / MANIFEST, asdict(result))
    return result
