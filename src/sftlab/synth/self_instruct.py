"""Self-Instruct: grow a task pool from human-written seeds with a teacher.

One round::

    pool ──sample 3 seed + 2 generated──▶ "write N new tasks" ──▶ numbered list
         ──filters (length, keywords, ROUGE-L vs pool)──▶ candidates
         ──"is it classification?"──▶ yes: output-first / no: input-first instance (JSON)
         ──▶ kept record, and the task joins the pool

Rounds repeat until ``num_instructions`` tasks are kept or ``max_rounds`` pass.
Requests inside a round go out together; everything that shapes a request
(examples drawn, order) comes from the seeded RNG and the previous rounds'
answers, so a re-run with the same cached answers rebuilds the same pool.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from sftlab.errors import DataError
from sftlab.recipe.sections.synth import SelfInstructSection
from sftlab.synth.context import SynthContext, join_prompt, single_turn
from sftlab.synth.echo import first_echo, template_echo
from sftlab.synth.parse import parse_json_objects, parse_numbered_list, parse_yes_no
from sftlab.synth.similarity import RougeIndex

PIPELINE = "self_instruct"
SEED_TASKS = Path(__file__).parent / "seed_tasks.jsonl"


@dataclass
class Task:
    """A task in the pool: a seed or a generated one."""

    id: str
    instruction: str
    input: str = ""
    output: str = ""
    is_classification: bool = False

    def as_example(self) -> str:
        return self.instruction if not self.input else f"{self.instruction} (input: {self.input})"


def load_seed_tasks(path: str | Path | None) -> list[Task]:
    """Seed tasks from JSONL (``instruction`` required; ``input``, ``output``, ``is_classification``, ``id``)."""
    path = Path(path) if path else SEED_TASKS
    if not path.is_file():
        raise DataError(f"{path}: seed task file not found (synth.self_instruct.seed_tasks)")
    tasks = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            instruction = str(row["instruction"]).strip()
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise DataError(
                f"{path}:{n}: expected a JSON object with an 'instruction' field ({err})"
            ) from None
        tasks.append(
            Task(
                id=str(row.get("id") or f"seed_{n:03d}"),
                instruction=instruction,
                input=str(row.get("input") or ""),
                output=str(row.get("output") or ""),
                is_classification=bool(row.get("is_classification", False)),
            )
        )
    if not tasks:
        raise DataError(f"{path}: no seed tasks")
    return tasks


def instruction_problem(text: str, cfg: SelfInstructSection, pool: RougeIndex) -> str | None:
    """Why a generated instruction is dropped, or ``None`` when it passes.

    >>> cfg = SelfInstructSection()
    >>> pool = RougeIndex(); _ = pool.add("Write a poem about the sea.")
    >>> instruction_problem("Draw a map of your town.", cfg, pool)
    'blocked_keyword'
    >>> instruction_problem("Write a poem about the sea!", cfg, pool)
    'too_similar'
    >>> instruction_problem("Explain photosynthesis to a child.", cfg, pool) is None
    True
    """
    n_words = len(text.split())
    if n_words < cfg.min_words:
        return "too_short"
    if n_words > cfg.max_words:
        return "too_long"
    lowered = text.lower()
    if any(re.search(rf"\b{re.escape(k.lower())}\b", lowered) for k in cfg.blocked_keywords):
        return "blocked_keyword"
    if not text[0].isalnum():
        return "bad_start"  # leftovers of list markup or code fences
    if pool.first_at_least(text, cfg.rouge_threshold)[1] is not None:
        return "too_similar"
    return None


@dataclass
class _Candidate:
    instruction: str
    example_ids: list[str]
    seed: int
    round: int
    is_classification: bool = False


def run(ctx: SynthContext) -> None:
    """Generate tasks into ``ctx.tally`` until enough are kept or the rounds run out."""
    cfg = ctx.config.self_instruct
    seeds = load_seed_tasks(cfg.seed_tasks)
    rng = random.Random(ctx.seed)
    pool = RougeIndex()
    for task in seeds:
        pool.add(task.instruction)
    generated: list[Task] = []
    for rnd in range(cfg.max_rounds):
        missing = cfg.num_instructions - len(generated)
        if missing <= 0:
            break
        candidates = _propose(ctx, cfg, rnd, rng, seeds, generated, pool)
        for cand in candidates[missing:]:
            ctx.tally.reject("filter", "surplus", {"instruction": cand.instruction})
        candidates = _classify(ctx, candidates[:missing])
        for task in _instances(ctx, candidates):
            generated.append(task)


def _propose(ctx, cfg, rnd, rng, seeds, generated, pool) -> list[_Candidate]:
    requests, examples = [], []
    for i in range(cfg.requests_per_round):
        shown = rng.sample(seeds, min(cfg.seed_examples, len(seeds)))
        shown += rng.sample(generated, min(cfg.generated_examples, len(generated)))
        rng.shuffle(shown)
        listing = "\n".join(f"{n}. {t.as_example()}" for n, t in enumerate(shown, 1))
        requests.append(
            ctx.request(
                "self_instruct_generate",
                (PIPELINE, "generate", rnd, i),
                examples=listing,
                count=str(cfg.tasks_per_request),
            )
        )
        examples.append([t.id for t in shown])
    results = ctx.teacher.complete_many(requests, f"self-instruct round {rnd + 1}: tasks")
    out: list[_Candidate] = []
    for res, ids in zip(results, examples, strict=True):
        ctx.tally.saw("generate")
        if not res.ok:
            ctx.tally.reject("generate", "request_failed", {"example_ids": ids}, detail=res.error)
            continue
        items = parse_numbered_list(res.text or "")
        if not items:
            ctx.tally.reject("generate", "malformed_list", {"example_ids": ids}, raw=res.text)
            continue
        template = ctx.templates["self_instruct_generate"]
        for n, text in enumerate(items):
            ctx.tally.saw("filter")
            item = {"instruction": text, "example_ids": ids}
            if n >= cfg.tasks_per_request:  # asked for N, got more: counted, not silently cut
                ctx.tally.reject("filter", "surplus", item, detail=f"beyond tasks_per_request ({n + 1})")
                continue
            echo = template_echo(text, template)
            if echo:
                ctx.tally.reject("filter", "template_echo", item, detail=echo)
                continue
            problem = instruction_problem(text, cfg, pool)
            if problem:
                ctx.tally.reject("filter", problem, item)
                continue
            pool.add(text)  # later candidates of this round are compared with it too
            out.append(_Candidate(text, ids, res.request.seed, rnd))
    return out


def _classify(ctx: SynthContext, candidates: list[_Candidate]) -> list[_Candidate]:
    requests = [
        ctx.request(
            "self_instruct_classify", (PIPELINE, "classify", c.instruction), instruction=c.instruction
        )
        for c in candidates
    ]
    results = ctx.teacher.complete_many(requests, "self-instruct: classify")
    kept = []
    for cand, res in zip(candidates, results, strict=True):
        ctx.tally.saw("classify")
        if not res.ok:
            ctx.tally.reject(
                "classify", "request_failed", {"instruction": cand.instruction}, detail=res.error
            )
            continue
        verdict = parse_yes_no(res.text or "")
        if verdict is None:
            ctx.tally.reject("classify", "malformed_verdict", {"instruction": cand.instruction}, raw=res.text)
            continue
        cand.is_classification = verdict
        kept.append(cand)
    return kept


def _instances(ctx: SynthContext, candidates: list[_Candidate]) -> list[Task]:
    def template(c: _Candidate) -> str:
        # Output first for classification, so labels are chosen before inputs and stay balanced.
        return "self_instruct_instance_output" if c.is_classification else "self_instruct_instance_input"

    requests = [
        ctx.request(template(c), (PIPELINE, "instance", c.instruction), instruction=c.instruction)
        for c in candidates
    ]
    results = ctx.teacher.complete_many(requests, "self-instruct: instances")
    tasks = []
    for cand, res in zip(candidates, results, strict=True):
        ctx.tally.saw("instance")
        item = {"instruction": cand.instruction, "is_classification": cand.is_classification}
        if not res.ok:
            ctx.tally.reject("instance", "request_failed", item, detail=res.error)
            continue
        objects = parse_json_objects(res.text or "")
        obj = objects[0] if objects else None
        output = obj.get("output") if obj else None
        input_text = obj.get("input", "") if obj else None
        if not isinstance(output, str) or not isinstance(input_text, str):
            ctx.tally.reject("instance", "malformed_json", item, raw=res.text)
            continue
        if not output.strip():
            ctx.tally.reject("instance", "empty_output", item, raw=res.text)
            continue
        echo = first_echo([input_text, output], ctx.templates[template(cand)])
        if echo:
            ctx.tally.reject("instance", "template_echo", item, raw=res.text, detail=echo)
            continue
        task = Task(
            id="",
            instruction=cand.instruction,
            input=input_text.strip(),
            output=output.strip(),
            is_classification=cand.is_classification,
        )
        record = single_turn(
            join_prompt(task.instruction, task.input),
            task.output,
            source=f"synth/{PIPELINE}",
            provenance=ctx.provenance(
                PIPELINE,
                ["self_instruct_generate", "self_instruct_classify", template(cand)],
                cand.seed,
                parent_id=None,
                example_ids=cand.example_ids,
                round=cand.round + 1,
                is_classification=cand.is_classification,
            ),
            instruction=task.instruction,
            input=task.input or None,
        )
        task.id = record.meta.id or ""
        if ctx.tally.keep(record, "instance"):
            tasks.append(task)
    return tasks
