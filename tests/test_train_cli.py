"""``sftlab train`` and ``sftlab doctor`` from a recipe file, and the doctor's checks on real tokenizers/weights."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from sftlab.cli.main import main
from sftlab.data.record import Conversation, Meta, Turn
from sftlab.recipe import load_recipe
from sftlab.train.doctor import doctor


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: on a shared, oversubscribed CPU a second spinning thread costs more than it gives."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _write_jsonl(path, n, prefix):
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"{prefix} question {i}?"},
                {"role": "assistant", "content": f"{prefix} {i}"},
            ]
        }
        for i in range(n)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.fixture(scope="module")
def healthy_model(tmp_path_factory, tokenizer):
    """A tiny model whose template-token embeddings look trained (the padding row is not left at zero)."""
    from sftlab.testing import save_tiny_model

    folder = save_tiny_model(tmp_path_factory.mktemp("healthy"), tokenizer)
    weights = load_file(folder / "model.safetensors")
    emb = weights["model.embed_tokens.weight"]
    zero_rows = (emb.norm(dim=1) == 0).nonzero().flatten()
    emb[zero_rows] = (
        torch.randn(len(zero_rows), emb.shape[1], generator=torch.Generator().manual_seed(0)) * 0.02
    )
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def test_train_command_writes_the_run_folder(healthy_model, tmp_path):
    domain = _write_jsonl(tmp_path / "domain.jsonl", 10, "domain")
    general = _write_jsonl(tmp_path / "general.jsonl", 4, "general")
    run = tmp_path / "run"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"""
output_dir: {run}
model: {{name: {healthy_model}}}
data:
  sources:
    - {{path: {domain}, task: qa}}
    - {{path: {general}, general: true, weight: 0.5}}
  eval_fraction: 0.2
render: {{max_length: 64}}
training: {{max_steps: 3, batch_size: 2, eval_steps: 3}}
"""
    )
    assert main(["train", str(recipe), "training.lr=1e-3"]) == 0
    summary = json.loads((run / "train" / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["learning_rate"] == 1e-3
    assert {r["source"] for r in summary["sampling_plan"]} == {"domain", "general"}
    assert (run / "final" / "adapter_model.safetensors").is_file()
    assert load_recipe(run / "recipe.resolved.yaml").training.lr == 1e-3
    rows = [json.loads(x) for x in (run / "train" / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_loss" in r for r in rows)

    # --resume on a finished run starts from its last checkpoint and has nothing left to do
    assert main(["train", str(recipe), "training.lr=1e-3", "--resume", "--skip-doctor"]) == 0
    assert json.loads((run / "train" / "summary.json").read_text())["resumed_from"].endswith("checkpoint-3")


def test_doctor_command_exit_codes_and_json(healthy_model, tmp_path, capsys):
    data = _write_jsonl(tmp_path / "d.jsonl", 6, "d")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {{name: {healthy_model}}}\ndata: {{sources: [{{path: {data}}}]}}\n")
    assert main(["doctor", str(recipe), "training.epochs=5", "--json"]) == 0  # warnings only
    codes = {f["code"] for f in json.loads(capsys.readouterr().out)}
    assert {"many_epochs", "little_general_data"} <= codes
    # a template whose assistant turns end in no end-of-turn token: the model never learns to stop
    no_eos = tmp_path / "no_eos.jinja"
    no_eos.write_text(
        "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} ;{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    assert main(["doctor", str(recipe), f"render.template={no_eos}", "--json"]) == 1
    assert "eos_untrained" in {f["code"] for f in json.loads(capsys.readouterr().out)}


def _conv(i, task="t", source="d", answer="ok"):
    return Conversation(
        turns=[Turn("user", f"q{i}"), Turn("assistant", answer)], meta=Meta(source=source, task=task)
    )


def _codes(recipe, records, tokenizer):
    return {f.code for f in doctor(recipe, records, tokenizer=tokenizer)}


def test_doctor_recipe_and_mix_checks(healthy_model, tokenizer):
    base = [f"model.name={healthy_model}"]
    recs = [_conv(i) for i in range(10)]
    assert _codes(load_recipe(None, [*base, "training.lr=5e-3"]), recs, tokenizer) >= {"lr_too_high"}
    assert "lr_too_high" not in _codes(load_recipe(None, base), recs, tokenizer)
    qv = load_recipe(None, [*base, "training.lora.target_modules=[q_proj, v_proj]"])
    assert "lora_qv_only" in _codes(qv, recs, tokenizer)
    assert "full_small_data" in _codes(load_recipe(None, [*base, "training.method=full"]), recs, tokenizer)
    skewed = [_conv(i, task="big") for i in range(9)] + [_conv(9, task="small")]
    assert "task_dominates" in _codes(load_recipe(None, base), skewed, tokenizer)
    assert "task_dominates" not in _codes(load_recipe(None, base), recs, tokenizer)
    long = [_conv(i, answer="word " * 200) for i in range(10)]
    assert "max_length_cuts" in _codes(load_recipe(None, [*base, "render.max_length=64"]), long, tokenizer)
    # 1 general record of 11 is 9%: enough
    mixed = load_recipe(
        None, [*base, "data.sources=[{path: d.jsonl, name: d}, {path: g.jsonl, name: g, general: true}]"]
    )
    with_general = recs + [_conv(0, source="g")]
    assert "little_general_data" not in _codes(mixed, with_general, tokenizer)
    assert "little_general_data" in _codes(mixed, recs, tokenizer)


def test_doctor_flags_untrained_template_embeddings(tiny_model_dir, healthy_model, tokenizer):
    recs = [_conv(i) for i in range(4)]
    # tiny_model_dir's padding row (the <|im_end|> token) is all zeros, like a token a base model never saw
    findings = doctor(load_recipe(None, [f"model.name={tiny_model_dir}"]), recs, tokenizer=tokenizer)
    flagged = [f for f in findings if f.code == "untrained_template_embeddings"]
    assert flagged and flagged[0].severity == "error" and "<|im_end|>" in flagged[0].why
    assert "untrained_template_embeddings" not in _codes(
        load_recipe(None, [f"model.name={healthy_model}"]), recs, tokenizer
    )


def test_shipped_accelerate_configs_load_and_point_at_existing_files():
    from pathlib import Path

    from accelerate.commands.config.config_args import load_config_from_file

    root = Path(__file__).resolve().parents[1]
    configs = sorted((root / "examples" / "accelerate").rglob("*.yaml"))
    kinds = {}
    for path in configs:
        cfg = load_config_from_file(str(path))
        kinds[path.stem] = cfg.distributed_type.value
        ds_file = (cfg.deepspeed_config or {}).get("deepspeed_config_file")
        if ds_file:
            ds = json.loads((root / ds_file).read_text())
            assert ds["gradient_accumulation_steps"] == "auto"  # the Trainer fills it from the recipe
    assert kinds == {
        "ddp": "MULTI_GPU",
        "fsdp": "FSDP",
        "deepspeed_zero2": "DEEPSPEED",
        "deepspeed_zero3": "DEEPSPEED",
    }
