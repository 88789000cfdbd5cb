"""Exported folders that other tools load: template in tokenizer_config.json, 4.x rope keys, public base
name, readable permissions, a model card built from the run's own files."""

from __future__ import annotations

import json
import os

import pytest
import torch
import yaml

from sftlab.export import export_model
from sftlab.export.card import public_name
from sftlab.export.folder import finish_folder


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tokenizer):
    """A run folder like `sftlab run` leaves: a LoRA adapter in final/, the recipe, summary and eval report."""
    from peft import LoraConfig, get_peft_model

    from sftlab.testing import tiny_llama

    base_dir = tmp_path_factory.mktemp("base")
    base = tiny_llama(tokenizer)
    base.config.rope_parameters = {"rope_type": "default", "rope_theta": 100000.0}  # SmolLM2's base
    base.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    run = tmp_path_factory.mktemp("run")
    model.save_pretrained(run / "final")
    (run / "final" / "sftlab_base.json").write_text(json.dumps({"base_model": str(base_dir)}))
    recipe = {
        "name": "support-bot",
        "model": {"name": str(base_dir)},
        "data": {"sources": [{"path": "data/tickets.jsonl"}, {"path": "data/faq.jsonl"}]},
        "training": {"method": "lora", "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}},
    }
    (run / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe))
    (run / "train").mkdir()
    summary = {
        "method": "lora", "steps": 40, "epochs": 2.0, "learning_rate": 2e-4, "train_loss_tail": 1.234,
        "eval_loss": 1.5, "final_reason": "best eval loss at step 30",
        "sampling_plan": [
            {"source": "tickets", "records": 120, "examples": 120, "tokens": 9000, "factor": 1.0, "share": 0.7},
            {"source": "faq", "records": 50, "examples": 50, "tokens": 3800, "factor": 1.0, "share": 0.3},
        ],
    }  # fmt: skip
    (run / "train" / "summary.json").write_text(json.dumps(summary))
    (run / "eval").mkdir()
    report = {
        "primary_metric": "exact_match", "base": "base", "retention": {},
        "models": {"base": {"overall": {"exact_match": 0.21}}, "tuned": {"overall": {"exact_match": 0.64}}},
    }  # fmt: skip
    (run / "eval" / "report.json").write_text(json.dumps(report))
    return run, base_dir


def test_merged_folder_loads_the_same_in_4x_and_5x_terms(run_dir, tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    run, base_dir = run_dir
    out = tmp_path / "merged"
    export_model(str(run), out)
    tok_config = json.loads((out / "tokenizer_config.json").read_text())
    assert tok_config["chat_template"] == (out / "chat_template.jinja").read_text()
    assert tok_config["tokenizer_class"] == "PreTrainedTokenizerFast"  # 4.x refuses 5.x's TokenizersBackend
    config = json.loads((out / "config.json").read_text())
    assert config["rope_parameters"]["rope_theta"] == 100000.0
    assert config["rope_theta"] == 100000.0 and config["rope_scaling"] is None  # what 4.x reads
    reread = AutoConfig.from_pretrained(out)  # 5.x reads the same rope back with the legacy keys beside
    assert (
        reread.rope_parameters["rope_theta"] == 100000.0 and reread.rope_parameters["rope_type"] == "default"
    )
    assert AutoTokenizer.from_pretrained(out).chat_template == tok_config["chat_template"]
    files, dirs = 0o666 & ~_umask(), 0o777 & ~_umask()
    assert out.stat().st_mode & 0o777 == dirs
    assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == {p.name: files for p in out.iterdir()}


def test_model_card_says_base_method_data_and_evaluation(run_dir, tmp_path):
    run, base_dir = run_dir
    export_model(str(run), tmp_path / "merged")
    card = (tmp_path / "merged" / "README.md").read_text()
    head = yaml.safe_load(card.split("---")[1])
    assert head == {"base_model": str(base_dir), "library_name": "transformers", "tags": ["sftlab", "lora"]}
    assert "# support-bot" in card and "lora (r=4, alpha=8" in card
    assert "| tickets | 120 | 120 | 9000 |" in card and "`data/faq.jsonl`" in card
    assert "exact_match: base → fine-tuned: 0.210 → 0.640" in card
    assert "best eval loss: 1.5" in card and "recipe.resolved.yaml" in card


def test_adapter_export_names_the_base_publicly(run_dir, tmp_path):
    run, base_dir = run_dir
    export_model(str(run), tmp_path / "adapter", adapter_only=True)
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base_dir)  # the reference, not a cache folder
    card = (tmp_path / "adapter" / "README.md").read_text()
    assert "library_name: peft" in card and "## Evaluation" in card


def test_embedded_base_gets_its_hub_name_instead_of_the_cache_path(tmp_path):
    folder = tmp_path / "final"
    folder.mkdir()
    cache = "/root/.cache/sftlab/models/smollm2-135m-instruct-1dab4a7c4e"
    (folder / "adapter_config.json").write_text(
        json.dumps({"base_model_name_or_path": cache, "peft_type": "LORA"})
    )
    finish_folder(folder, "smollm2-135m-instruct")
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    card = (folder / "README.md").read_text()
    assert "base_model: HuggingFaceTB/SmolLM2-135M-Instruct" in card and "Q4_1 GGUF" in card
    assert public_name("Qwen/Qwen3-0.6B") == "Qwen/Qwen3-0.6B"


def test_conversion_cache_and_atomic_outputs_are_readable(tmp_path):
    from sftlab.utils.atomic import atomic_path, write_json

    with atomic_path(tmp_path / "folder", is_dir=True) as tmp:
        torch.save({}, tmp / "a.bin")
        os.chmod(tmp / "a.bin", 0o600)  # as safetensors leaves its files
        (tmp / "sub").mkdir(mode=0o700)
    write_json(tmp_path / "x.json", {})
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o777 & ~_umask()
    assert (tmp_path / "folder" / "sub").stat().st_mode & 0o777 == 0o777 & ~_umask()
    assert (tmp_path / "folder" / "a.bin").stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o666 & ~_umask()
