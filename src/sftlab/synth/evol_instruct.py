"""Evol-Instruct: make prompts harder (in depth) or rarer (in breadth), round after round.

Each round, every surviving prompt gets one evolution picked by the seeded RNG::

    in depth:   add_constraints · deepen · concretize · increase_reasoning
    in breadth: breadth (a new task in the same domain, rarer)

then the teacher answers the evolved prompt. An evolution fails, and its parent
goes on to the next round instead, when the evolved prompt

* adds nothing (equal to the parent, or ROUGE-L ≥ ``max_parent_similarity``;
  breadth evolutions are meant to differ, so only equality counts for them),
* copies the template's scaffolding (``#New Task#``, "original task"), or a whole clause of its
  instructions ("Reply with the new task only") → ``template_echo``,
* is a refusal ("sorry", "as an AI"), or is empty,

or when its answer is a refusal or shorter than ``min_answer_words``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from sftlab.errors import DataError
from sftlab.synth.context import SynthContext, join_prompt, single_turn
from sftlab.synth.echo import template_echo
from sftlab.synth.self_instruct import load_seed_tasks
from sftlab.synth.similarity import rouge_l

PIPELINE = "evol_instruct"

_SCAFFOLD = re.compile(r"#\s*(original|new|given|rewritten|created)\s*(task|prompt)\s*#|original task", re.I)
_REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|sorry, but|as an ai\b|as a language model|i cannot|i can'?t (help|assist))",
    re.I,
)


@dataclass
class Prompt:
    id: str
    text: str
    generation: int = 0


def evolution_problem(parent: str, evolved: str, operation: str, max_similarity: float) -> str | None:
    """Why an evolved prompt is a failed evolution, or ``None``.

    >>> evolution_problem("Sort a list.", "Sort a list.", "deepen", 0.9)
    'no_change'
    >>> evolution_problem("Sort a list.", "#New Task#: Sort a list in place.", "deepen", 0.9)
    'copied_template'
    >>> evolution_problem("Sort a list.", "Sorry, as an AI I cannot do that.", "deepen", 0.9)
    'refusal'
    >>> evolution_problem("Sort a list.", "Sort a list of dates, newest first, in place.", "deepen", 0.9) is None
    True
    """
    if not evolved.strip():
        return "empty"
    if evolved.strip().lower() == parent.strip().lower():
        return "no_change"
    if _SCAFFOLD.search(evolved):
        return "copied_template"
    if _REFUSAL.search(evolved):
        return "refusal"
    if operation != "breadth" and rouge_l(parent, evolved) >= max_similarity:
        return "no_new_information"
    return None


def answer_problem(answer: str, min_words: int) -> str | None:
    """Why an answer to an evolved prompt is unusable, or ``None``."""
    if _REFUSAL.search(answer[:200]):
        return "answer_refusal"
    if len(answer.split()) < min_words:
        return "answer_too_short"
    return None


def load_prompts(path: str | None, limit: int | None) -> list[Prompt]:
    """Starting prompts: the first user message of each record in ``path``, or the seed tasks."""
    if path is None:
        prompts = [Prompt(t.id, join_prompt(t.instruction, t.input)) for t in load_seed_tasks(None)]
    else:
        prompts = _read_prompts(Path(path))
    return prompts[:limit] if limit else prompts


def _read_prompts(path: Path) -> list[Prompt]:
    from sftlab.data.io import read_records

    records = list(read_records(path))
    out = []
    for i, rec in enumerate(records):
        text = getattr(rec, "instruction", "")
        if text.strip():
            out.append(Prompt(rec.meta.id or f"{path.stem}-{i}", text))
    if not out:
        raise DataError(f"{path}: no records with a user message to evolve (synth.evol_instruct.inputs)")
    return out


def run(ctx: SynthContext) -> None:
    """Evolve the starting prompts for ``rounds`` generations; survivors are answered and kept."""
    cfg = ctx.config.evol_instruct
    rng = random.Random(ctx.seed)
    current = load_prompts(cfg.inputs, cfg.limit)
    for rnd in range(cfg.rounds):
        ops = [rng.choice(cfg.operations) for _ in current]
        requests = [
            ctx.request(f"evol_{op}", (PIPELINE, "evolve", rnd, p.id, op), prompt=p.text)
            for p, op in zip(current, ops, strict=True)
        ]
        results = ctx.teacher.complete_many(requests, f"evol-instruct round {rnd + 1}: evolve")
        evolved: list[tuple[Prompt, Prompt, str, int]] = []
        for parent, op, res in zip(current, ops, results, strict=True):
            ctx.tally.saw("evolve")
            item = {"parent_id": parent.id, "parent": parent.text, "operation": op, "round": rnd + 1}
            if not res.ok:
                ctx.tally.reject("evolve", "request_failed", item, detail=res.error)
                continue
            text = (res.text or "").strip()
            problem = evolution_problem(parent.text, text, op, cfg.max_parent_similarity)
            echo = None if problem else template_echo(text, ctx.templates[f"evol_{op}"])
            if problem or echo:
                ctx.tally.reject("evolve", problem or "template_echo", item, raw=res.text, detail=echo)
                continue
            child = Prompt(f"{parent.id}.{rnd + 1}", text, parent.generation + 1)
            evolved.append((parent, child, op, res.request.seed))
        answers = ctx.teacher.complete_many(
            [
                ctx.request("evol_answer", (PIPELINE, "answer", child.text), prompt=child.text)
                for _, child, _, _ in evolved
            ],
            f"evol-instruct round {rnd + 1}: answer",
        )
        survivors = {p.id: p for p in current}  # a failed evolution leaves its parent for the next round
        for (parent, child, op, seed), res in zip(evolved, answers, strict=True):
            ctx.tally.saw("answer")
            item = {"parent_id": parent.id, "prompt": child.text, "operation": op, "round": rnd + 1}
            if not res.ok:
                ctx.tally.reject("answer", "request_failed", item, detail=res.error)
                continue
            problem = answer_problem(res.text or "", cfg.min_answer_words)
            if problem:
                ctx.tally.reject("answer", problem, item, raw=res.text)
                continue
            record = single_turn(
                child.text,
                (res.text or "").strip(),
                source=f"synth/{PIPELINE}",
                provenance=ctx.provenance(
                    PIPELINE,
                    [f"evol_{op}", "evol_answer"],
                    seed,
                    parent_id=parent.id,
                    operation=op,
                    generation=child.generation,
                ),
            )
            if ctx.tally.keep(record, "answer"):
                survivors[parent.id] = Prompt(record.meta.id or child.id, child.text, child.generation)
        current = list(survivors.values())
