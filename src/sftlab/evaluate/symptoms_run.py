"""The symptom and safety checks of one evaluation: what each model is asked, and the report parts.

Per model (loaded once by the caller): the eval answers it already gave are judged as they are;
it also answers the first ``symptoms.general_prompts`` general prompts and the safety prompts.
Then every non-base model is gated against the base on the same prompts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sftlab.evaluate.generation import generate_batch
from sftlab.evaluate.safety import load_safety_prompts, refusal_rates, safety_gate
from sftlab.evaluate.symptoms import answer_symptoms, summarise, symptom_gates

Ask = Callable[[Sequence[str], int, str], list[Any]]
"""``ask(prompts, max_new_tokens, description)`` → greedy answers (``text``, ``new_tokens``) to one-turn prompts."""


def local_asker(model, tokenizer, batch_size: int) -> Ask:
    """:data:`Ask` for a loaded model: batched greedy generation with its chat template."""

    def ask(prompts: Sequence[str], max_new_tokens: int, description: str) -> list[Any]:
        messages = [[{"role": "user", "content": p}] for p in prompts]
        return generate_batch(
            model,
            tokenizer,
            messages,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            description=description,
        )

    return ask


EXAMPLES_SHOWN = 3
"""Answers shown per model and symptom, so a reader sees what was counted."""


class SymptomChecks:
    """Collects every model's flags and answers; :meth:`report` compares them with the base."""

    def __init__(self, recipe, general_records: Sequence[Any]):
        cfg = recipe.evaluation
        self.cfg, self.sym, self.safe = cfg, cfg.symptoms, cfg.safety
        n = self.sym.general_prompts if self.sym.enabled else 0
        self.general = [r.instruction for r in general_records[:n] if r.instruction]
        self.safety_prompts = load_safety_prompts(self.safe.path) if self.safe.enabled else []
        self.flags: dict[str, dict[str, list[dict]]] = {}
        self.lengths: dict[str, dict[str, list[int]]] = {}
        self.answers: dict[str, dict[str, list[str]]] = {}
        self.safety_answers: dict[str, list[str]] = {}

    @property
    def enabled(self) -> bool:
        return self.sym.enabled or self.safe.enabled

    def collect(self, label: str, ask: Ask, eval_prompts: Sequence[str], answers: Sequence[dict]) -> None:
        """Judge ``answers`` (the eval answers with ``produced`` and ``new_tokens``) and put the extra prompts to
        the model through ``ask`` (:func:`local_asker`, or an endpoint's)."""
        if self.sym.enabled:
            produced = [a["produced"] for a in answers]
            lengths = [a["new_tokens"] for a in answers]
            self._add(label, "eval", eval_prompts, produced, lengths, self.cfg.max_new_tokens)
            if self.general:
                gens = ask(self.general, self.sym.max_new_tokens, "generate (general)")
                texts, lengths = [g.text for g in gens], [g.new_tokens for g in gens]
                self._add(label, "general", self.general, texts, lengths, self.sym.max_new_tokens)
        if self.safe.enabled:
            prompts = [p["prompt"] for p in self.safety_prompts]
            gens = ask(prompts, self.safe.max_new_tokens, "generate (safety)")
            self.safety_answers[label] = [g.text for g in gens]

    def _add(self, label, part, prompts, texts, lengths, max_new_tokens) -> None:
        flags = [
            answer_symptoms(p, t, new_tokens=n, max_new_tokens=max_new_tokens)
            for p, t, n in zip(prompts, texts, lengths, strict=True)
        ]
        self.flags.setdefault(label, {})[part] = flags
        self.lengths.setdefault(label, {})[part] = list(lengths)
        self.answers.setdefault(label, {})[part] = list(texts)

    def report(self, base_label: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """``(symptoms, safety)`` report parts (None when switched off)."""
        return (
            self._symptoms(base_label) if self.sym.enabled else None,
            self._safety(base_label) if self.safe.enabled else None,
        )

    def _symptoms(self, base_label: str) -> dict[str, Any]:
        out: dict[str, Any] = {"models": {}, "gates": {}, "examples": {}, "action": self.sym.action}
        for label, parts in self.flags.items():
            out["models"][label] = {
                part: summarise(flags, self.lengths[label][part]) for part, flags in parts.items()
            }
            out["examples"][label] = self._examples(label)
            if label != base_label and base_label in self.flags and self.sym.gates:
                out["gates"][label] = {
                    part: symptom_gates(
                        self.flags[base_label][part], flags, dict(self.sym.gates), action=self.sym.action
                    )
                    for part, flags in parts.items()
                }
        return out

    def _examples(self, label: str) -> list[dict[str, Any]]:
        rows = []
        for part, flags in self.flags[label].items():
            for name in ("looping", "never_stops", "empty", "refusal", "wrong_language"):
                hits = [i for i, f in enumerate(flags) if f[name]][:EXAMPLES_SHOWN]
                rows += [
                    {"part": part, "symptom": name, "answer": self.answers[label][part][i][:300]}
                    for i in hits
                ]
        return rows

    def _safety(self, base_label: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "models": {},
            "gates": {},
            "action": self.safe.action,
            "prompts": len(self.safety_prompts),
        }
        for label, answers in self.safety_answers.items():
            out["models"][label] = refusal_rates(self.safety_prompts, answers)
            if label != base_label and base_label in self.safety_answers:
                out["gates"][label] = safety_gate(
                    self.safety_prompts,
                    self.safety_answers[base_label],
                    answers,
                    max_lost_refusals=self.safe.max_lost_refusals,
                    max_over_refusal_rise=self.safe.max_over_refusal_rise,
                    action=self.safe.action,
                )
        return out


def tripped(symptoms: dict[str, Any] | None, safety: dict[str, Any] | None) -> list[str]:
    """Messages of the gates that failed (``action: fail``), for the evaluation's exit status."""
    found = []
    for label, parts in ((symptoms or {}).get("gates") or {}).items():
        found += [
            f"{label} symptoms ({part}): {v['message']}"
            for part, gates in parts.items()
            for v in gates.values()
            if v["status"] == "fail"
        ]
    for label, kinds in ((safety or {}).get("gates") or {}).items():
        found += [f"{label} safety: {v['message']}" for v in kinds.values() if v["status"] == "fail"]
    return found
