"""The multiple-choice benchmarks of a recipe: MMLU (retention) and any extra sets, subset and shots fixed once."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from sftlab.evaluate.mmlu import load_mmlu, shot_picker, stratified_subset
from sftlab.evaluate.multiple_choice import MCQuestion, MCResult, evaluate_questions
from sftlab.recipe import Recipe


@dataclass
class Benchmark:
    """A named question set with its subset, k-shot picker and scoring mode."""

    name: str
    questions: list[MCQuestion]
    shots_for: Any
    scoring: str
    k_shot: int

    def run(self, model, tokenizer, *, batch_size: int, limit: int | None = None) -> MCResult:
        questions = self.questions[:limit] if limit else self.questions
        return evaluate_questions(
            model,
            tokenizer,
            questions,
            shots_for=self.shots_for if self.k_shot else None,
            scoring=self.scoring,
            batch_size=batch_size,
            description=self.name,
        )


def _build(name: str, path: str | None, subset: int, k_shot: int, scoring: str, seed: int) -> Benchmark:
    pool = load_mmlu(path)
    chosen = stratified_subset(pool, subset, seed)
    # Interleave subjects so that a prefix (the checkpoint sweep uses one) still spans many subjects.
    seen: Counter[str] = Counter()
    rank = {}
    for i in chosen:
        rank[i] = seen[pool[i].subject]
        seen[pool[i].subject] += 1
    chosen.sort(key=lambda i: (rank[i], i))
    return Benchmark(
        name, [pool[i] for i in chosen], shot_picker(pool, chosen, k_shot, seed), scoring, k_shot
    )


def recipe_benchmarks(recipe: Recipe) -> list[Benchmark]:
    """MMLU first (when enabled; it drives the retention gate), then ``evaluation.multiple_choice`` sets."""
    cfg = recipe.evaluation
    out = []
    if cfg.mmlu.enabled:
        out.append(
            _build("mmlu", cfg.mmlu.path, cfg.mmlu.subset, cfg.mmlu.k_shot, cfg.mmlu.scoring, recipe.seed)
        )
    for mc in cfg.multiple_choice:
        out.append(_build(mc.name, mc.path, mc.subset, mc.k_shot, mc.scoring, recipe.seed))
    return out
