"""The ``select`` step: the best records within a budget, each different enough from the ones already chosen.

DEITA-style selection: rank records by a score (from the ``score`` step), walk
down the ranking and accept a record only if

1. the budget is not yet spent (else ``over_budget``),
2. its task (or label) still has room under ``per_task_budget`` /
   ``max_share_per_task`` (else ``task_quota``),
3. its embedding's cosine similarity to *every* record already selected is at
   most ``max_similarity`` (else ``too_similar``) — DEITA's "Repr Filter".

::

    ranked:   r7 (0.93)  r2 (0.91)  r5 (0.88)  r1 (0.80)  r4 (0.75) ...
    decision: keep       too_similar keep      task_quota keep   → budget 3 reached
                         (≈ r7)               (task full)        → the rest: over_budget

Embeddings are computed lazily in ranking order, chunk by chunk, so a small
budget over a large pool embeds little more than it needs.
"""

from __future__ import annotations

import ast
import math
import operator
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from sftlab.data.record import Conversation, Record
from sftlab.data.steps.base import Decision, GlobalStep
from sftlab.errors import RecipeError

DEFAULT_MODEL = "smollm2-135m-instruct"
CHUNK = 256
NO_GROUP = "(none)"

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def score_function(expression: str) -> Callable[[dict[str, float]], float | None]:
    """Compile a score name or arithmetic over score names; ``None`` when a score it uses is missing.

    >>> f = score_function("judge_quality * judge_complexity")
    >>> f({"judge_quality": 8, "judge_complexity": 5}), f({"judge_quality": 8})
    (40, None)
    >>> score_function("-ifd")({"ifd": 0.7})
    -0.7
    >>> score_function("__import__('os')")
    Traceback (most recent call last):
    ...
    sftlab.errors.RecipeError: curation.steps: select.score: 'Call' is not allowed in '__import__('os')'; use score names, numbers, + - * / and parentheses
    """
    try:
        tree = ast.parse(expression, mode="eval").body
    except SyntaxError:
        raise RecipeError([f"select.score: cannot parse '{expression}'"], source="curation.steps") from None
    allowed = (ast.BinOp, ast.UnaryOp, ast.Name, ast.Constant, ast.Load, ast.operator, ast.unaryop)
    for node in ast.walk(tree):
        bad = not isinstance(node, allowed)
        bad = bad or (isinstance(node, ast.BinOp) and type(node.op) not in _BINARY)
        bad = bad or (isinstance(node, ast.UnaryOp) and type(node.op) not in _UNARY)
        bad = bad or (isinstance(node, ast.Constant) and not isinstance(node.value, int | float))
        if bad:
            raise RecipeError(
                [
                    f"select.score: '{type(node).__name__}' is not allowed in '{expression}'; "
                    "use score names, numbers, + - * / and parentheses"
                ],
                source="curation.steps",
            )

    def evaluate(node: ast.AST, scores: dict[str, float]) -> float | None:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return scores.get(node.id)
        if isinstance(node, ast.UnaryOp):
            inner = evaluate(node.operand, scores)
            return None if inner is None else _UNARY[type(node.op)](inner)
        left, right = evaluate(node.left, scores), evaluate(node.right, scores)
        if left is None or right is None:
            return None
        try:
            return _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            return None

    return lambda scores: evaluate(tree, scores)


def selection_text(record: Record, which: str = "all") -> str:
    """The text embedded for the similarity test: ``prompt``, ``response`` or ``all``."""
    if not isinstance(record, Conversation):
        return record.text
    if which == "prompt":
        return record.prompt_text()
    if which == "response":
        return "\n".join(t.content for t in record.turns if t.role == "assistant")
    return record.all_text()


def group_of(record: Record, balance_by: str = "task") -> str:
    value = getattr(record.meta, balance_by, None)
    return NO_GROUP if value is None else str(value)


def group_caps(
    groups: list[str],
    *,
    budget: int | None,
    per_task_budget: int | dict[str, int] | None,
    max_share_per_task: float | None,
) -> dict[str, float]:
    """The most records each group may contribute (``inf`` = no limit).

    ``per_task_budget`` is one number for every group, or a mapping with an
    optional ``"*"`` entry for groups not named; ``max_share_per_task`` caps each
    group at that share of ``budget`` (at least one record).

    >>> group_caps(["a", "b"], budget=10, per_task_budget={"a": 2}, max_share_per_task=0.5)
    {'a': 2, 'b': 5}
    """
    caps: dict[str, float] = {}
    for group in sorted(set(groups)):
        cap: float = math.inf
        if isinstance(per_task_budget, int):
            cap = per_task_budget
        elif isinstance(per_task_budget, dict):
            cap = per_task_budget.get(group, per_task_budget.get("*", math.inf))
        if max_share_per_task is not None and budget is not None:
            cap = min(cap, max(1, math.floor(max_share_per_task * budget)))
        caps[group] = cap
    return caps


def _cfg(config: Any, key: str, default: Any = None) -> Any:
    return getattr(config, key, default) if config is not None else default


class SelectStep(GlobalStep):
    """Keep the top records by ``score`` under a budget, per-task quotas and a similarity ceiling.

    ``default_model`` is the language model for ``embedding: lm`` when
    ``embedding_model`` is not set; the curation runner sets it to the recipe's
    ``model.name``. ``embedder`` reuses an already-loaded :class:`~sftlab.data.embeddings.Embedder`.
    """

    name = "select"

    def __init__(self, config: Any = None, *, default_model: str = DEFAULT_MODEL, embedder=None):
        super().__init__(_cfg(config, "action", "drop"))
        self.config = config
        self.default_model = default_model
        self.embedder = embedder
        self.budget: int | None = _cfg(config, "budget")
        self.score = score_function(_cfg(config, "score", "heuristic"))
        self.max_similarity: float | None = _cfg(config, "max_similarity", 0.9)
        if _cfg(config, "max_share_per_task") is not None and self.budget is None:
            raise RecipeError(
                ["select.max_share_per_task needs select.budget: set a budget or use per_task_budget"],
                source="curation.steps",
            )

    def _embedder(self):
        if self.embedder is None:
            from sftlab.data.embeddings import load_embedder

            kind = _cfg(self.config, "embedding", "minilm")
            model = _cfg(self.config, "embedding_model") or (self.default_model if kind == "lm" else None)
            self.embedder = load_embedder(kind, model=model, batch_size=_cfg(self.config, "batch_size", 32))
        return self.embedder

    def rank(self, records: list[Record]) -> list[int]:
        """Indices best first; records without the score go last, ties keep input order."""
        values = [self.score(r.meta.extra.get("scores", {})) for r in records]
        self._values = values
        if records and all(v is None for v in values):
            known = sorted({k for r in records for k in r.meta.extra.get("scores", {})})
            raise RecipeError(
                [
                    f"select.score '{_cfg(self.config, 'score', 'heuristic')}' is missing on every record "
                    f"(known scores: {', '.join(known) or 'none'}); run a score step before select"
                ],
                source="curation.steps",
            )
        return sorted(range(len(records)), key=lambda i: (values[i] is None, -(values[i] or 0.0), i))

    def decide(self, records: list[Record]) -> list[Decision]:
        order = self.rank(records)
        balance_by = _cfg(self.config, "balance_by", "task")
        groups = [group_of(r, balance_by) for r in records]
        caps = group_caps(
            groups,
            budget=self.budget,
            per_task_budget=_cfg(self.config, "per_task_budget"),
            max_share_per_task=_cfg(self.config, "max_share_per_task"),
        )
        which = _cfg(self.config, "text", "all")
        target = len(records) if self.budget is None else min(self.budget, len(records))

        decisions: list[Decision | None] = [None] * len(records)
        taken: Counter = Counter()
        chosen: list[int] = []
        vectors: np.ndarray | None = None  # rows 0..len(chosen)-1 are the selected embeddings
        embedded: dict[int, np.ndarray] = {}
        for start in range(0, len(order), CHUNK):
            chunk = order[start : start + CHUNK]
            if len(chosen) >= target:
                for i in chunk:
                    decisions[i] = Decision(records[i], "over_budget", self._detail(i))
                continue
            if self.max_similarity is not None:
                # only records that could still be taken need an embedding
                todo = [i for i in chunk if taken[groups[i]] < caps[groups[i]]]
                if todo:
                    emb = self._embedder().encode([selection_text(records[i], which) for i in todo])
                    embedded.update(zip(todo, emb, strict=True))
                    if vectors is None:
                        vectors = np.zeros((target, emb.shape[1]), dtype=np.float32)
            for i in chunk:
                group = groups[i]
                if len(chosen) >= target:
                    decisions[i] = Decision(records[i], "over_budget", self._detail(i))
                    continue
                if taken[group] >= caps[group]:
                    decisions[i] = Decision(records[i], "task_quota", f"{balance_by} {group} is full")
                    continue
                if self.max_similarity is not None and chosen:
                    sims = vectors[: len(chosen)] @ embedded[i]
                    nearest = int(np.argmax(sims))
                    if sims[nearest] > self.max_similarity:
                        other = records[chosen[nearest]].meta.id or f"#{chosen[nearest]}"
                        detail = f"cosine {sims[nearest]:.3f} with {other}"
                        decisions[i] = Decision(records[i], "too_similar", detail)
                        continue
                if self.max_similarity is not None:
                    vectors[len(chosen)] = embedded[i]
                chosen.append(i)
                taken[group] += 1
                decisions[i] = Decision(records[i], None, self._detail(i))

        self._report(records, chosen, taken, embedded, vectors, which)
        return decisions  # type: ignore[return-value]

    def _detail(self, i: int) -> str:
        value = self._values[i]
        return "no score" if value is None else f"score {value:.4g}"

    def _report(self, records, chosen, taken, embedded, vectors, which) -> None:
        from sftlab.data.embeddings import mean_pairwise_distance

        details: dict[str, Any] = {
            "budget": self.budget,
            "selected": len(chosen),
            "selected_per_group": dict(sorted(taken.items())),
            "score_cutoff": self._values[chosen[-1]] if chosen else None,
            "unscored": sum(v is None for v in self._values),
        }
        if vectors is not None and self.embedder is not None:
            # spread of the input (a random sample, embedding what is missing) vs the selection
            rng = np.random.default_rng(0)
            sample = sorted(rng.choice(len(records), min(len(records), 256), replace=False).tolist())
            missing = [i for i in sample if i not in embedded]
            if missing:
                emb = self.embedder.encode([selection_text(records[i], which) for i in missing], "spread")
                embedded.update(zip(missing, emb, strict=True))
            details["embedding"] = _cfg(self.config, "embedding", "minilm")
            details["embedding_spread"] = {
                "input_sample": round(mean_pairwise_distance(np.stack([embedded[i] for i in sample])), 4),
                "selected": round(mean_pairwise_distance(vectors[: len(chosen)]), 4),
            }
        self.details.update(details)
