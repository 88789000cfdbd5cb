"""What every synth pipeline shares: the teacher, the templates, seeds, provenance and the tally.

The tally is the pipeline's ledger: every candidate ends either kept (a
record) or rejected with a short snake_case reason and the teacher's raw text,
so ``summary.json`` can say exactly where the teacher's work went and the
rejects file loses nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sftlab.data.record import Conversation, Meta, Turn
from sftlab.recipe.sections.synth import SynthSection
from sftlab.synth.engine import ChatRequest, Teacher
from sftlab.synth.templates import Template
from sftlab.utils.hashing import fingerprint


def derive_seed(base: int, *parts: Any) -> int:
    """A request seed fixed by the run seed and the request's place in the pipeline.

    >>> derive_seed(42, "gen", 0) == derive_seed(42, "gen", 0) != derive_seed(42, "gen", 1)
    True
    """
    return int(fingerprint(base, *parts)[:8], 16)


@dataclass
class Tally:
    """Kept records and rejected candidates, counted per stage and reason."""

    kept: list[Conversation] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    rejected: Counter = field(default_factory=Counter)
    candidates: Counter = field(default_factory=Counter)
    _ids: set = field(default_factory=set, repr=False)

    def saw(self, stage: str, n: int = 1) -> None:
        """Count ``n`` candidates entering ``stage``."""
        self.candidates[stage] += n

    def keep(self, record: Conversation, stage: str) -> bool:
        """Keep ``record`` unless one with its id (the same prompt and answer) was kept already."""
        if record.meta.id in self._ids:
            self.reject(stage, "duplicate", {"id": record.meta.id, "prompt": record.turns[0].content})
            return False
        self._ids.add(record.meta.id)
        self.kept.append(record)
        return True

    def reject(
        self, stage: str, reason: str, item: dict[str, Any], raw: str | None = None, detail: str | None = None
    ) -> None:
        self.rejected[f"{stage}.{reason}"] += 1
        row: dict[str, Any] = {"stage": stage, "reason": reason, "item": item}
        if detail is not None:
            row["detail"] = detail
        if raw is not None:
            row["raw"] = raw
        self.rejects.append(row)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kept": len(self.kept),
            "candidates_by_stage": dict(self.candidates),
            "rejected_total": sum(self.rejected.values()),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
        }


@dataclass
class SynthContext:
    """Everything a pipeline needs, built once by the runner."""

    config: SynthSection
    teacher: Teacher
    templates: dict[str, Template]
    seed: int
    tally: Tally = field(default_factory=Tally)

    def request(self, template_id: str, seed_parts: tuple[Any, ...], **values: str) -> ChatRequest:
        """A single-message request rendered from a template, seeded by its place in the run."""
        text = self.templates[template_id].render(**values)
        return ChatRequest.user(text, template=template_id, seed=derive_seed(self.seed, *seed_parts))

    def provenance(self, pipeline: str, templates: list[str], seed: int, **extra: Any) -> dict[str, Any]:
        """``meta.provenance`` of a generated record."""
        return {
            "pipeline": pipeline,
            "teacher": self.config.teacher.model,
            "templates": {t: self.templates[t].version for t in templates},
            "seed": seed,
            **extra,
        }


def single_turn(
    prompt: str, answer: str, *, source: str, provenance: dict[str, Any], **extra: Any
) -> Conversation:
    """A one-exchange record with a content-derived id."""
    return Conversation(
        turns=[Turn("user", prompt), Turn("assistant", answer)],
        meta=Meta(
            id=f"{source.replace('/', '-')}-{fingerprint(prompt, answer)[:12]}",
            source=source,
            provenance=provenance,
            extra={k: v for k, v in extra.items() if v is not None},
        ),
    )


def join_prompt(instruction: str, input_text: str) -> str:
    """Alpaca instruction + input as one user message."""
    return f"{instruction}\n\n{input_text}" if input_text.strip() else instruction
