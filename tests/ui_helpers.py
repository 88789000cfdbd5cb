"""A tiny run for the ``sftlab ui`` tests: fruit questions with duplicates, curated with ``sftlab run --until curate``."""

from __future__ import annotations

import json
from pathlib import Path

FRUITS = ["apple", "banana", "cherry", "grape", "lemon", "mango", "melon", "peach", "pear", "plum"]
YELLOW = {"banana", "lemon", "mango"}


def rows(fruits: list[str]) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"Is a {f} yellow? Answer yes or no."},
                {"role": "assistant", "content": "yes" if f in YELLOW else "no"},
            ],
            "task": "colour",
            "source": "fruit",
        }
        for f in fruits
    ]


def write_recipe(
    folder: Path, model: str, *, steps: str = "[{type: exact_dedup}]", max_steps: int = 4
) -> Path:
    """``folder/recipe.yaml`` over 12 records (2 exact duplicates) whose run folder is ``folder/runs/tiny``."""
    data = folder / "fruit.jsonl"
    if not data.exists():
        data.write_text("".join(json.dumps(r) + "\n" for r in rows(FRUITS) + rows(FRUITS[:2])))
    recipe = folder / "recipe.yaml"
    recipe.write_text(
        f"""
name: tiny
output_dir: {folder / "runs" / "tiny"}
model: {{name: {model}}}
data:
  sources: [{{path: {data}}}]
curation:
  steps: {steps}
render: {{max_length: 64}}
training: {{max_steps: {max_steps}, batch_size: 2, lr: 1.0e-3, logging_steps: 1, eval_steps: 1000, save_steps: 1000}}
"""
    )
    return recipe
