"""A scripted OpenAI-compatible teacher: a real FastAPI app on loopback with canned, well-formed answers.

A tiny random model behind ``sftlab serve`` writes gibberish, which checks
structure and accounting but never exercises the "kept" paths. This server
recognises the built-in prompt templates and answers each kind the way a good
teacher would — plus a few planned defects (a blocked task, a near-duplicate, a
refusal, broken JSON, a question it cannot answer) so every filter fires.
It also plays a bad network: ``fail_first`` answers 429 (or ``fail_status``)
to the first N requests, ``hang_after`` stops answering after N completions
(until the server is closed) so a test can kill a client at a known point,
``delay_s`` holds every answer that long so identical requests overlap.
``quirks`` turns on habits of real teachers: ``echo`` (copies the template's
placeholders and instructions), ``surplus`` (more items than asked for),
``dash_numbers`` / ``bold_numbers`` (lists written "- 1. Task" / "**1.** Task").

Every completed request is logged as one JSONL line with the SHA-256 of its
body (``body_sha256``, the same field ``sftlab serve`` writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

_WORDS = [
    "river",
    "budget",
    "poem",
    "garden",
    "engine",
    "violin",
    "planet",
    "recipe",
    "ticket",
    "harbour",
    "lantern",
    "meadow",
    "puzzle",
    "orbit",
    "castle",
    "cactus",
    "glacier",
    "compass",
    "ledger",
    "falcon",
    "theorem",
    "canyon",
    "biscuit",
    "comet",
    "mosaic",
    "pepper",
    "quartz",
    "saddle",
    "tunnel",
    "walnut",
    "yacht",
    "zephyr",
    "anchor",
    "beacon",
    "cobalt",
    "dune",
    "ember",
    "fjord",
    "granite",
    "hazel",
    "iris",
    "jasmine",
]
_VERBS = ["Describe", "Summarise", "Explain", "Compare", "Plan", "List", "Rewrite", "Evaluate", "Outline"]


@dataclass
class TeacherState:
    fail_first: int = 0
    fail_status: int = 429
    delay_s: float = 0.0
    quirks: frozenset = frozenset()
    hang_after: int | None = None
    completed: int = 0
    received: int = 0
    failed: int = 0
    released: bool = False
    answers: dict[str, str] = field(default_factory=dict)  # doc-QA question → answer, for closed-book


def body_sha256(payload: Any) -> str:
    """SHA-256 of the body as canonical JSON (key order and spacing do not matter)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def create_teacher_app(
    request_log: str | Path | None = None,
    *,
    fail_first: int = 0,
    fail_status: int = 429,
    hang_after: int | None = None,
    delay_s: float = 0.0,
    quirks: tuple[str, ...] = (),
):
    """The FastAPI app; ``app.state.teacher`` exposes the counters."""
    state = TeacherState(
        fail_first=fail_first,
        fail_status=fail_status,
        hang_after=hang_after,
        delay_s=delay_s,
        quirks=frozenset(quirks),
    )
    app = FastAPI()
    app.state.teacher = state
    log = open(request_log, "a", encoding="utf-8") if request_log else None  # noqa: SIM115

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": "scripted-teacher", "object": "model"}]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        payload = await request.json()
        state.received += 1
        if state.received <= state.fail_first:
            state.failed += 1
            return JSONResponse(
                {"error": {"message": f"scripted failure {state.fail_status}", "type": "scripted"}},
                status_code=state.fail_status,
                headers={"retry-after": "0"},
            )
        if state.hang_after is not None and state.completed >= state.hang_after:
            while not state.released:
                await asyncio.sleep(0.02)
            return JSONResponse({"error": {"message": "closing"}}, status_code=503)
        if state.delay_s:
            await asyncio.sleep(state.delay_s)
        prompt = "\n".join(str(m.get("content", "")) for m in payload.get("messages", []))
        text = _answer(prompt, state, random.Random(body_sha256(payload)))
        state.completed += 1
        if log:
            log.write(json.dumps({"body_sha256": body_sha256(payload), "n": state.completed}) + "\n")
            log.flush()
        return {
            "id": f"chatcmpl-{state.completed}",
            "object": "chat.completion",
            "created": 0,
            "model": payload.get("model", "scripted-teacher"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": len(prompt.split()),
                "completion_tokens": len(text.split()),
                "total_tokens": len(prompt.split()) + len(text.split()),
            },
        }

    return app


@contextlib.contextmanager
def scripted_teacher(
    request_log: str | Path | None = None, **options: Any
) -> Iterator[tuple[str, TeacherState]]:
    """Run the scripted teacher on 127.0.0.1; yield ``(base_url, state)``."""
    from sftlab.serve.testing import running_server

    app = create_teacher_app(request_log, **options)
    state: TeacherState = app.state.teacher
    try:
        with running_server(app) as base_url:
            yield base_url, state
            state.released = True
    finally:
        state.released = True


def _answer(prompt: str, state: TeacherState, rng: random.Random) -> str:
    quirks = state.quirks
    if "New tasks:" in prompt:
        return _new_tasks(prompt, rng, quirks)
    if "Reply with a JSON object" in prompt:
        task = _field(prompt, "Task")
        if "echo" in quirks and task.startswith("Classify"):  # the template's own slots, unfilled
            return '{"output": "<the class label>", "input": "<an input of that class>"}'
        return _instance(task, rng)
    if "is a classification task" in prompt:
        task = _field(prompt, "Task")
        return "Yes" if task.startswith("Classify") else "No"
    if "#New Task#:" in prompt:
        evolved = _evolve(prompt, rng)
        if "echo" in quirks and rng.random() < 0.4:
            evolved += " Reply with the new task only, with no heading and no explanation."
        return evolved
    if "question-and-answer pairs" in prompt:
        return _qa_pairs(prompt, state)
    if "Answer the question below" in prompt:
        question = _field(prompt, "Question")
        return state.answers.get(question, "I do not know that.")
    if "state the same facts" in prompt:
        a, b = _field(prompt, "Answer A"), _field(prompt, "Answer B")
        return "Yes" if a.strip().lower() == b.strip().lower() else "No"
    # A plain prompt (the evolved task itself): a well-formed answer.
    return f"Here is a careful answer. First, consider {rng.choice(_WORDS)}. Then weigh {rng.choice(_WORDS)}."


def _field(prompt: str, name: str) -> str:
    match = re.search(rf"^{re.escape(name)}: (.*)$", prompt, re.M)
    return match.group(1).strip() if match else ""


def _new_tasks(prompt: str, rng: random.Random, quirks: frozenset = frozenset()) -> str:
    count = int(re.search(r"Write (\d+) new tasks", prompt).group(1))
    count += 3 if "surplus" in quirks else 0
    examples = re.findall(r"^\d+\. (.+)$", prompt.split("Example tasks:")[1], re.M)
    tasks = []
    for i in range(count):
        roll = rng.random()
        if i == 1 and "echo" in quirks:
            tasks.append(
                "Each task must be doable by a text-only assistant: nothing that needs seeing images."
            )
        elif i == 0 and examples:
            tasks.append(examples[0].split(" (input:")[0])  # a copy of an example: too similar
        elif roll < 0.1:
            tasks.append(f"Draw a picture of a {rng.choice(_WORDS)}.")
        elif roll < 0.15:
            tasks.append("Go now")
        elif roll < 0.35:
            w = rng.sample(_WORDS, 7)
            tasks.append(f"Classify {w[0]} {w[1]} reviews of the {w[2]} {w[3]} {w[4]} as {w[5]} or {w[6]}.")
        elif roll < 0.42:
            tasks.append(f"{rng.choice(_VERBS)} the brokenjson {' '.join(rng.sample(_WORDS, 5))}.")
        else:
            tasks.append(f"{rng.choice(_VERBS)} the {' '.join(rng.sample(_WORDS, 6))}.")
    style = (
        "- {n}. {t}"
        if "dash_numbers" in quirks
        else "**{n}.** {t}"
        if "bold_numbers" in quirks
        else "{n}. {t}"
    )
    return "\n".join(style.format(n=n, t=t) for n, t in enumerate(tasks, 1))


def _instance(task: str, rng: random.Random) -> str:
    if "brokenjson" in task:
        return '{"input": "half an object", "output": '
    if task.startswith("Classify"):
        labels = task.rstrip(".").split(" as ")[-1].split(" or ")
        return json.dumps({"output": rng.choice(labels), "input": " ".join(rng.sample(_WORDS, 3))})
    return (
        "```json\n"
        + json.dumps({"input": "", "output": f"A full answer about {' and '.join(rng.sample(_WORDS, 2))}."})
        + "\n```"
    )


def _evolve(prompt: str, rng: random.Random) -> str:
    original = prompt.split("#Original Task#:")[1].split("#New Task#:")[0].strip()
    roll = rng.random()
    if roll < 0.1:
        return "I'm sorry, but as an AI I cannot rewrite this task."
    if roll < 0.2:
        return original
    if roll < 0.28:
        return f"#New Task#: {original} Add one more {rng.choice(_WORDS)}."
    return (
        f"{original} Justify each step, and relate it to a {rng.choice(_WORDS)} and a {rng.choice(_WORDS)}."
    )


def _qa_pairs(prompt: str, state: TeacherState) -> str:
    chunk = prompt.split('"""')[1].strip()
    body = " ".join(line for line in chunk.splitlines() if not line.startswith("#"))
    count = int(re.search(r"write (\d+) question-and-answer pairs", prompt).group(1))
    count += 2 if "surplus" in state.quirks else 0
    if "MALFORMED" in chunk:
        return "Here you go: [{'instruction': broken"
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", body) if s.strip()]
    pairs = []
    for i, sentence in enumerate(sentences[:count]):
        question = f"What is stated about {' '.join(sentence.split()[:4])}?"
        answer = sentence
        # The closed-book answer matches for all but questions about the word "secret".
        state.answers[question] = answer if "secret" not in sentence else "Nobody can know."
        pairs.append({"instruction": question, "input": "", "output": answer})
        if i == 0 and "PARTIAL" in chunk:
            return "```json\n" + json.dumps(pairs)[:-1] + ', {"instruction": "cut off'
    if "echo" in state.quirks:  # the form's slots instead of a pair
        pairs.insert(0, {"instruction": "<question>", "input": "", "output": "<answer>"})
    return "```json\n" + json.dumps(pairs, indent=1) + "\n```"
