"""The in-context baseline: does fine-tuning beat simply showing the base model k solved examples?

The examples are real training conversations placed before the question as
earlier user/assistant turns, preferring examples of the same ``meta.task``.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sftlab.data.record import Conversation, Record
from sftlab.evaluate.samples import EvalSample, prompt_messages


class IclPrompter:
    """Builds k-shot chat prompts from training records, the same shots for every question of a task."""

    def __init__(self, train_records: Sequence[Record], k: int, seed: int = 0):
        self.k = k
        pool = [r for r in train_records if isinstance(r, Conversation) and r.response]
        by_task: dict[str | None, list[Conversation]] = defaultdict(list)
        for rec in pool:
            by_task[rec.meta.task].append(rec)
        rng = random.Random(seed)
        self.shots = {task: rng.sample(recs, min(k, len(recs))) for task, recs in by_task.items()}
        self.any = rng.sample(pool, min(k, len(pool)))

    def messages(self, sample: EvalSample) -> list[dict[str, Any]]:
        """``sample``'s prompt with k solved (user, assistant) pairs inserted after the system prompt."""
        shots = self.shots.get(sample.task) or self.any
        shot_turns: list[dict[str, Any]] = []
        for rec in shots[: self.k]:
            shot_turns += [m for m in prompt_messages(rec) if m["role"] != "system"]
            shot_turns.append({"role": "assistant", "content": rec.response})
        head = [m for m in sample.messages[:1] if m["role"] == "system"]
        return head + shot_turns + sample.messages[len(head) :]
