"""LoRA merge/export: the merged folder equals the adapter-applied model and needs only transformers."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from sftlab.errors import ModelError
from sftlab.export import export_model
from sftlab.models import load_model

TARGETS = ["q_proj", "v_proj", "o_proj", "gate_proj", "down_proj"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_dir):
    """A run folder whose final/ holds a non-zero LoRA adapter over the tiny model."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, lora_dropout=0.0))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)  # B starts at zero; a zero adapter would make every check pass trivially
    run = tmp_path_factory.mktemp("run")
    model.save_pretrained(run / "final", safe_serialization=True)
    (run / "final" / "sftlab_base.json").write_text(json.dumps({"base_model": str(tiny_model_dir)}))
    return run


def _logits(model, tokenizer):
    ids = tokenizer("Merging adapters should not change a single answer.", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        return model(input_ids=ids).logits.float()


def test_merged_folder_matches_adapter_and_loads_with_plain_transformers(
    run_dir, tmp_path, tokenizer, tiny_model_dir
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = export_model(str(run_dir), tmp_path / "merged")
    assert result.mode == "merged" and result.merged_modules == 2 * len(TARGETS)
    out = tmp_path / "merged"
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json"} <= names
    assert "adapter_config.json" not in names and not any(n.endswith((".bin", ".pt")) for n in names)

    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert "peft" not in type(merged).__module__
    with_adapter = load_model(str(run_dir), dtype="float32", device="cpu")
    assert type(with_adapter).__name__ == "PeftModel"
    expected = _logits(with_adapter, tokenizer)
    torch.testing.assert_close(_logits(merged, tokenizer), expected, atol=1e-4, rtol=0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert (_logits(base, tokenizer) - expected).abs().max() > 1e-2  # the adapter really changes the model

    in_memory = load_model(
        str(run_dir), dtype="float32", device="cpu", merge_adapter=True
    )  # eval, chat, serve
    assert "peft" not in type(in_memory).__module__
    torch.testing.assert_close(_logits(in_memory, tokenizer), expected, atol=1e-4, rtol=0)

    plain_tok = AutoTokenizer.from_pretrained(out)
    assert plain_tok.chat_template and "<|im_start|>" in plain_tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False
    )


def test_merged_weight_is_w0_plus_scaled_ba(run_dir, tmp_path, tiny_model_dir):
    export_model(str(run_dir), tmp_path / "merged")
    w0 = load_file(tiny_model_dir / "model.safetensors")
    lora = load_file(run_dir / "final" / "adapter_model.safetensors")
    merged = load_file(tmp_path / "merged" / "model.safetensors")
    key = "model.layers.1.mlp.down_proj"
    a = lora[f"base_model.model.{key}.lora_A.weight"]
    b = lora[f"base_model.model.{key}.lora_B.weight"]
    torch.testing.assert_close(
        merged[f"{key}.weight"], w0[f"{key}.weight"] + (8 / 4) * b @ a, atol=1e-6, rtol=0
    )
    key = "model.layers.0.self_attn.k_proj.weight"  # not a target: untouched
    assert torch.equal(merged[key], w0[key])


def test_adapter_only_export_loads_back_as_the_same_model(run_dir, tmp_path, tokenizer):
    result = export_model(str(run_dir), tmp_path / "adapter", adapter_only=True)
    out = tmp_path / "adapter"
    assert result.mode == "adapter"
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    reloaded = load_model(str(out), dtype="float32", device="cpu")
    original = load_model(str(run_dir), dtype="float32", device="cpu")
    torch.testing.assert_close(_logits(reloaded, tokenizer), _logits(original, tokenizer), atol=1e-6, rtol=0)


def test_adapter_only_on_a_full_model_is_refused(tiny_model_dir, tmp_path):
    with pytest.raises(ModelError, match="--adapter-only"):
        export_model(str(tiny_model_dir), tmp_path / "x", adapter_only=True)


def test_merge_into_quantized_base_is_refused_and_writes_nothing(run_dir, tiny_model_dir, tmp_path):
    quant_base = tmp_path / "quant-base"
    shutil.copytree(tiny_model_dir, quant_base)
    config = json.loads((quant_base / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (quant_base / "config.json").write_text(json.dumps(config))
    adapter = tmp_path / "adapter"
    shutil.copytree(run_dir / "final", adapter)
    (adapter / "sftlab_base.json").write_text(json.dumps({"base_model": str(quant_base)}))
    with pytest.raises(ModelError, match="quantized \\(bitsandbytes\\).*--dequantize"):
        export_model(str(adapter), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_export_merge(run_dir, tmp_path):
    from sftlab.cli.main import main

    assert main(["export", str(run_dir), "--merge", "--out", str(tmp_path / "m")]) == 0
    manifest = json.loads((tmp_path / "m" / "sftlab_export.json").read_text())
    assert manifest["mode"] == "merged" and manifest["max_logit_error"] < 1e-4
    assert main(["export", str(run_dir), "--merge", "--adapter-only", "--out", str(tmp_path / "n")]) == 1
