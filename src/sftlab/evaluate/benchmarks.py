"""The multiple-choice benchmarks of a recipe: the retention set first, then MMLU and any extra sets.

Subsets and shots are fixed once (seeded), so every model answers exactly the same questions —
what the paired retention gate needs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sftlab.errors import DataError
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


def build_benchmark(
    name: str, pool: Sequence[MCQuestion], subset: int, k_shot: int, scoring: str, seed: int
) -> Benchmark:
    """``subset`` questions of ``pool`` (stratified by subject, seeded; 0 = all), shots from the rest."""
    chosen = stratified_subset(pool, subset, seed)
    if k_shot and len(chosen) >= len(pool):
        raise DataError(
            f"{name}: {k_shot}-shot needs solved examples outside the {len(chosen)} scored questions; "
            f"score fewer (fewer than {len(pool)}) or set k_shot: 0"
        )
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
    """The set ``retention.benchmark`` names first (it drives the gate), then MMLU and ``multiple_choice`` sets."""
    cfg = recipe.evaluation
    out = []
    if cfg.mmlu.enabled:
        out.append(
            build_benchmark(
                "mmlu",
                load_mmlu(cfg.mmlu.path),
                cfg.mmlu.subset,
                cfg.mmlu.k_shot,
                cfg.mmlu.scoring,
                recipe.seed,
            )
        )
    for mc in cfg.multiple_choice:
        out.append(
            build_benchmark(mc.name, load_mmlu(mc.path), mc.subset, mc.k_shot, mc.scoring, recipe.seed)
        )
    gate = cfg.retention.benchmark
    if gate is not None and gate not in {b.name for b in out}:
        from sftlab.evaluate.embedded_sets import load_embedded

        r = cfg.retention
        out.append(build_benchmark(gate, load_embedded(gate), r.questions, r.k_shot, r.scoring, recipe.seed))
    return sorted(out, key=lambda b: b.name != gate)  # stable: the gate's set first, the rest as listed
