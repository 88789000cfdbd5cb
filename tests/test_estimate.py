"""Memory estimator: state bytes equal the real tiny model's, activations near autograd's saved tensors."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from sftlab.estimate import activation_bytes, count_params, estimate_memory, logits_bytes, model_config


def _step_bytes(model):
    """Real bytes after one AdamW step: weights, gradients, optimizer states (the scalar step counters aside)."""
    params = list(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-3)
    ids = torch.randint(0, model.config.vocab_size, (1, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    weights = sum(p.numel() * p.element_size() for p in params)
    grads = sum(p.grad.numel() * p.grad.element_size() for p in trainable)
    states = sum(
        t.numel() * t.element_size()
        for state in opt.state.values()
        for name, t in state.items()
        if name != "step"
    )
    return weights, grads, states


def test_full_state_bytes_match_a_real_model(tiny_model):
    weights, grads, states = _step_bytes(tiny_model)
    e = estimate_memory(tiny_model.config, method="full", precision="fp32", seq_len=8, batch=1)
    assert (e.parts["weights"], e.parts["gradients"], e.parts["optimizer_states"]) == (weights, grads, states)
    assert e.parts["master_weights"] == 0
    assert e.params_total == sum(p.numel() for p in tiny_model.parameters())


def test_lora_state_bytes_match_a_real_peft_model(tiny_model):
    from peft import LoraConfig, get_peft_model

    config = tiny_model.config
    peft_model = get_peft_model(tiny_model, LoraConfig(r=4, target_modules="all-linear"))
    weights, grads, states = _step_bytes(peft_model)
    e = estimate_memory(config, method="lora", lora_r=4, precision="fp32", seq_len=8, batch=1)
    assert e.params_trainable == sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert (e.parts["weights"], e.parts["gradients"], e.parts["optimizer_states"]) == (weights, grads, states)


def test_named_targets_and_8bit_optimizer(tiny_model):
    counts = count_params(tiny_model.config, lora_r=8, target_modules=["q_proj", "v_proj"])
    layers = tiny_model.model.layers
    expected = sum(
        8 * (m.in_features + m.out_features)
        for layer in layers
        for m in (layer.self_attn.q_proj, layer.self_attn.v_proj)
    )
    assert counts.lora == expected and counts.lora_modules == 4
    e = estimate_memory(
        tiny_model.config, method="lora", lora_r=8, target_modules=["q_proj", "v_proj"], optimizer="adamw8bit"
    )
    assert e.parts["optimizer_states"] == 2 * expected


def test_activation_formula_is_close_to_what_autograd_saves():
    config = LlamaConfig(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=172,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).float()
    param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in param_storages:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    ids = torch.randint(0, 256, (2, 96))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, labels=ids)
    measured = sum(saved.values())
    estimated = activation_bytes(config, 96, 2, False, 4) + logits_bytes(config, 96, 2, 4)
    assert 0.8 * measured < estimated < 1.3 * measured
    assert activation_bytes(config, 96, 2, True, 4) < activation_bytes(config, 96, 2, False, 4) / 2


def test_7b_verdicts_from_a_config_without_weights():
    config = LlamaConfig()  # Llama-2-7B shapes; built on the meta device, nothing allocated
    full = estimate_memory(config, method="full", seq_len=2048, batch=1)
    assert 6.5e9 < full.params_total < 7e9
    assert set(full.verdicts.values()) == {"does not fit"}
    assert (
        full.rule_of_thumb["full_12x"]
        <= full.parts["weights"]
        + full.parts["gradients"]
        + full.parts["master_weights"]
        + full.parts["optimizer_states"]
        <= full.rule_of_thumb["full_mixed_adamw_16x"]
    )
    qlora = estimate_memory(config, method="qlora", seq_len=512, batch=1, grad_checkpointing=True)
    assert qlora.verdicts["24 GB"] == "fits"
    sharded = estimate_memory(
        config, method="full", seq_len=2048, batch=1, gpus=8, zero=3, grad_checkpointing=True
    )
    assert sharded.verdicts["80 GB"] == "fits"


def test_model_config_reads_folders_and_adapters(tiny_model_dir, tmp_path):
    assert model_config(str(tiny_model_dir)).hidden_size == 16
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "sftlab_base.json").write_text(json.dumps({"base_model": str(tiny_model_dir)}))
    assert model_config(str(tmp_path)).hidden_size == 16


def test_cli_estimate_json_and_measure_on_cpu(tiny_model_dir, capsys):
    from sftlab.cli.main import main

    args = [
        "estimate",
        "--model",
        str(tiny_model_dir),
        "--method",
        "lora",
        "--seq-len",
        "128",
        "--batch",
        "2",
    ]
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["method"] == "lora" and data["total"] == sum(data["parts"].values())
    assert main(args) == 0
    assert "rule of thumb" in capsys.readouterr().out
    if not torch.cuda.is_available():
        assert main([*args, "--measure"]) == 1
        assert "--measure needs a CUDA GPU" in capsys.readouterr().err


def test_bad_method_is_a_clear_error(tiny_model):
    from sftlab.errors import SftlabError

    with pytest.raises(SftlabError, match="--method must be one of"):
        estimate_memory(tiny_model.config, method="prefix")
