"""Training on Qwen3's template end to end: per-turn samples are trained, and the run saves the template
with ``render.template_kwargs`` so that generation renders prompts as training did."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from sftlab.cli.main import main

MULTITURN = Path(__file__).parent.parent / "examples" / "data" / "sharegpt_multiturn.jsonl"


def test_train_qwen3_per_turn_with_thinking_off(tmp_path, qwen3_tokenizer):
    from sftlab.models import load_tokenizer
    from sftlab.models.generate import chat_inputs
    from sftlab.testing import save_tiny_model

    torch.set_num_threads(1)
    model = save_tiny_model(tmp_path / "tiny-qwen3", qwen3_tokenizer)
    run = tmp_path / "run"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"""
output_dir: {run}
model: {{name: {model}}}
data: {{sources: [{{path: {MULTITURN}}}], eval_fraction: 0}}
render: {{max_length: 512, template_kwargs: {{enable_thinking: false}}}}
training: {{max_steps: 2, batch_size: 2}}
"""
    )
    assert main(["train", str(recipe), "--skip-doctor"]) == 0
    summary = json.loads((run / "train" / "summary.json").read_text())
    assert summary["render"]["records"] == 24 and summary["render"]["samples"] == 44
    assert summary["render"]["rendered_per_turn"] == 20
    saved = load_tokenizer(str(run / "final"))
    ids = chat_inputs(saved, [{"role": "user", "content": "Hi"}])["input_ids"][0].tolist()
    assert saved.decode(ids).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
