"""The ``select`` step: the best records within a budget, spread over the pool, keeping its domains.

DEITA-style selection, with its similarity ceiling calibrated on the pool: rank
records by a score (``auto``: every computed signal, :mod:`.ranking`), walk down
the ranking and accept a record only if

1. it has an answer with a letter or digit in it (else ``empty_answer``; such a
   record never reaches the ranking),
2. the budget is not yet spent (else ``over_budget``),
3. its task (or label) still has room under ``per_task_budget`` /
   ``max_share_per_task`` (else ``task_quota``), its source conversation under
   ``per_cluster`` (else ``cluster_quota``), and with ``stratify: domain`` its
   domain under the pool's share (else ``domain_quota``),
4. its embedding's cosine similarity to *every* record already selected is at
   most the ceiling (else ``too_similar``) — DEITA's "Repr Filter". With
   ``max_similarity: auto`` the ceiling is the strictest that still fills the
   budget from the best ``pool_factor × budget`` records (:mod:`.diversity`).

::

    ranked:   r7 (0.93)  r2 (0.91)  r5 (0.88)  r1 (0.80)  r4 (0.75) ...
    decision: keep       too_similar keep      task_quota keep   → budget 3 reached
                         (≈ r7)               (task full)        → the rest: over_budget

The details carry the spread of the selection next to a random subset of the
same size and the whole pool (same measure); when the selection is not more
diverse than random the step fails (``on_not_diverse: fail``) or warns. They
also carry each domain's and script's share in the pool and in the selection.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

import numpy as np

from sftlab.curate.steps.base import Decision, GlobalStep
from sftlab.curate.steps.diversity import calibrate_ceiling, cluster_keys, random_subset, spread_check
from sftlab.curate.steps.domains import domain_of, domain_quotas, script_of, share_table
from sftlab.curate.steps.ranking import AUTO, rank_values, score_function
from sftlab.data.record import Conversation, Record
from sftlab.errors import DataError, RecipeError

__all__ = ["SelectStep", "group_caps", "score_function", "selection_text"]

DEFAULT_MODEL = "smollm2-135m-instruct"
CHUNK = 256
NO_GROUP = "(none)"
FIXED_CEILING = 0.9
"""The ceiling used by ``max_similarity: auto`` when there is no budget to calibrate against."""
_WORD_CHAR = re.compile(r"\w")


def selection_text(record: Record, which: str = "all") -> str:
    """The text embedded for the similarity test: ``prompt``, ``response`` or ``all``."""
    if not isinstance(record, Conversation):
        return record.text
    if which == "prompt":
        return record.prompt_text()
    if which == "response":
        return "\n".join(t.content for t in record.turns if t.role == "assistant")
    return record.all_text()


def has_answer(record: Record) -> bool:
    """Whether the final answer says anything: a letter or digit, or a tool call (``""``, ``"..."`` do not)."""
    if not isinstance(record, Conversation):
        return bool(_WORD_CHAR.search(record.text))
    last = next((t for t in reversed(record.turns) if t.role == "assistant"), None)
    return last is not None and (bool(last.tool_calls) or bool(_WORD_CHAR.search(last.content or "")))


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


class _Walk:
    """One pass down the ranking at one similarity ceiling: what was taken, and why the rest was not."""

    def __init__(self, step: SelectStep, ceiling: float | None):
        self.step, self.ceiling = step, ceiling
        self.chosen: list[int] = []
        self.why: dict[int, tuple[str, str]] = {}
        self.taken: dict[str, Counter] = {"group": Counter(), "cluster": Counter(), "domain": Counter()}
        self.in_set: set[int] = set()

    def run(self, order: list[int], *, domain_caps: dict[str, int] | None) -> _Walk:
        s = self.step
        vectors = getattr(self, "picked", None)  # rows 0..len(chosen)-1: the chosen records' embeddings
        for pos, i in enumerate(order):
            if len(self.chosen) >= s.target:
                break
            if i in self.in_set or (i in self.why and self.why[i][0] != "domain_quota"):
                continue
            reason = self._quota(i, domain_caps)
            if reason is None and self.ceiling is not None:  # embedded only when it could be taken
                s.embed(order, pos)
                if vectors is None:
                    vectors = self.picked = np.zeros((max(s.target, 1), s.dim), dtype=np.float32)
            if reason is None and self.ceiling is not None and self.chosen:
                sims = vectors[: len(self.chosen)] @ s.vectors[i]
                nearest = int(np.argmax(sims))
                if sims[nearest] > self.ceiling:
                    other = s.records[self.chosen[nearest]].meta.id or f"#{self.chosen[nearest]}"
                    reason = ("too_similar", f"cosine {sims[nearest]:.3f} with {other}")
            if reason is not None:
                self.why[i] = reason
                continue
            self.why.pop(i, None)
            if vectors is not None:
                vectors[len(self.chosen)] = s.vectors[i]
            self.chosen.append(i)
            self.in_set.add(i)
            for kind, key in (("group", s.groups[i]), ("cluster", s.clusters[i]), ("domain", s.domains[i])):
                self.taken[kind][key] += 1
        return self

    def _quota(self, i: int, domain_caps: dict[str, int] | None) -> tuple[str, str] | None:
        s = self.step
        group, cluster, domain = s.groups[i], s.clusters[i], s.domains[i]
        if self.taken["group"][group] >= s.caps[group]:
            return "task_quota", f"{s.balance_by} {group} is full"
        if s.per_cluster is not None and self.taken["cluster"][cluster] >= s.per_cluster:
            return "cluster_quota", f"{s.per_cluster} already taken from source conversation {cluster}"
        if domain_caps is not None and self.taken["domain"][domain] >= domain_caps.get(domain, 0):
            return "domain_quota", f"domain {domain} has its pool share ({domain_caps.get(domain, 0)})"
        return None


class SelectStep(GlobalStep):
    """Keep the top records by ``score`` under a budget, quotas and a (calibrated) similarity ceiling.

    ``default_model`` is the language model for ``embedding: lm`` when
    ``embedding_model`` is not set; the curation runner sets it to the recipe's
    ``model.name``. ``embedder`` reuses an already-loaded :class:`~sftlab.curate.embeddings.Embedder`.
    """

    name = "select"

    def __init__(self, config: Any = None, *, default_model: str = DEFAULT_MODEL, embedder=None):
        super().__init__(_cfg(config, "action", "drop"))
        self.config = config
        self.default_model = default_model
        self.embedder = embedder
        self.budget: int | None = _cfg(config, "budget")
        self.expression: str = _cfg(config, "score", AUTO)
        if self.expression != AUTO:
            score_function(self.expression)  # a bad expression is a recipe error before any work
        self.max_similarity: float | str | None = _cfg(config, "max_similarity", AUTO)
        self.per_cluster: int | None = _cfg(config, "per_cluster", 1)
        self.balance_by: str = _cfg(config, "balance_by", "task")
        if _cfg(config, "max_share_per_task") is not None and self.budget is None:
            raise RecipeError(
                ["select.max_share_per_task needs select.budget: set a budget or use per_task_budget"],
                source="curation.steps",
            )

    def _embedder(self):
        if self.embedder is None:
            from sftlab.curate.embeddings import load_embedder

            kind = _cfg(self.config, "embedding", "minilm")
            model = _cfg(self.config, "embedding_model") or (self.default_model if kind == "lm" else None)
            self.embedder = load_embedder(kind, model=model, batch_size=_cfg(self.config, "batch_size", 32))
        return self.embedder

    def embed(self, order: list[int], pos: int) -> None:
        """Make sure ``order[pos]`` has its embedding, computing it with the next chunk of the ranking."""
        if order[pos] in self.embedded:
            return
        todo = [i for i in order[pos : pos + CHUNK] if i not in self.embedded]
        self._encode(todo)

    def _encode(self, todo: list[int], description: str = "embed") -> None:
        if not todo:
            return
        which = _cfg(self.config, "text", "all")
        emb = self._embedder().encode([selection_text(self.records[i], which) for i in todo], description)
        if self.vectors is None:
            self.dim = emb.shape[1]
            self.vectors = np.zeros((len(self.records), self.dim), dtype=np.float32)
        self.vectors[todo] = emb
        self.embedded.update(todo)

    def rank(self, records: list[Record], eligible: list[int]) -> list[int]:
        """Eligible indices best first; records without the score go last, ties keep input order."""
        values = rank_values(self.expression, [r.meta.extra.get("scores", {}) for r in records], self.domains)
        self._values = values
        if eligible and all(values[i] is None for i in eligible):
            known = sorted({k for r in records for k in r.meta.extra.get("scores", {})})
            known_list = ", ".join(known) or "none"
            if self.expression == AUTO:
                problem = (
                    "select.score 'auto' combines heuristic, ifd, judge_quality and judge_complexity, and no record "
                    f"has any of them (known scores: {known_list}); add one to the score step's signals, or rank "
                    "by a score that exists, e.g. select.score: -perplexity"
                )
            else:
                problem = (
                    f"select.score '{self.expression}' is missing on every record (known scores: {known_list}); "
                    "run a score step before select"
                )
            raise RecipeError(
                [problem],
                source="curation.steps",
            )
        return sorted(eligible, key=lambda i: (values[i] is None, -(values[i] or 0.0), i))

    def _setup(self, records: list[Record]) -> list[int]:
        """Per-record groups, clusters and domains; the ranking of the records that have an answer."""
        self.records = records
        self.embedded: set[int] = set()
        self.vectors: np.ndarray | None = None
        self.dim = 0
        self.domains = [domain_of(r) for r in records]
        eligible = [i for i, r in enumerate(records) if has_answer(r)]
        order = self.rank(records, eligible)
        self.target = len(eligible) if self.budget is None else min(self.budget, len(eligible))
        self.groups = [group_of(r, self.balance_by) for r in records]
        self.caps = group_caps(
            self.groups,
            budget=self.budget,
            per_task_budget=_cfg(self.config, "per_task_budget"),
            max_share_per_task=_cfg(self.config, "max_share_per_task"),
        )
        by = _cfg(self.config, "cluster_by", "source")
        self.clusters = (
            cluster_keys([r.meta.id for r in records], [r.meta.provenance.get("parent_id") for r in records])
            if by == "source"
            else [f"#{i}" for i in range(len(records))]
        )
        return order

    def _quotas(self, order: list[int]) -> dict[str, int] | None:
        if _cfg(self.config, "stratify", "none") != "domain":
            return None
        return domain_quotas(Counter(self.domains[i] for i in order), self.target)

    def _candidates(self, order: list[int], factor: float) -> list[int]:
        """The best ``factor × budget`` records (per domain: ``factor ×`` its quota with ``stratify: domain``)."""
        quotas = self._quotas(order)
        if quotas is None:
            return order[: max(self.target, math.ceil(factor * self.target))]
        room = {d: math.ceil(factor * q) for d, q in quotas.items()}
        picked = []
        for i in order:
            if room.get(self.domains[i], 0) > 0:
                room[self.domains[i]] -= 1
                picked.append(i)
        return picked

    def _walk(self, order: list[int], ceiling: float | None) -> _Walk:
        quotas = self.quotas
        walk = _Walk(self, ceiling).run(order, domain_caps=quotas)
        if quotas is not None and len(walk.chosen) < walk.step.target:
            walk.run(order, domain_caps=None)  # a domain too small for its share: others fill the rest
        return walk

    def _choose(self, order: list[int]) -> _Walk:
        """The final walk: fixed ceiling, none, or ``auto`` calibrated on the best ``pool_factor × budget``."""
        self.quotas = self._quotas(order)
        if self.max_similarity != AUTO:
            return self._walk(order, self.max_similarity)
        if self.budget is None or self.target == 0:
            return self._walk(order, FIXED_CEILING)
        candidates = self._candidates(order, _cfg(self.config, "pool_factor", 4.0))
        if len(self._walk(candidates, 1.0).chosen) < self.target:
            candidates = order  # quotas leave too few among the best: calibrate over everything
        self._encode([i for i in candidates if i not in self.embedded])
        ceiling = calibrate_ceiling(lambda c: len(self._walk(candidates, c).chosen), target=self.target)
        self.details["ceiling"] = {"value": ceiling, "calibrated_on": len(candidates)}
        return self._walk(candidates, ceiling)

    def decide(self, records: list[Record]) -> list[Decision]:
        order = self._setup(records)
        walk = self._choose(order)
        chosen = set(walk.chosen)
        decisions = []
        for i, record in enumerate(records):
            if i in chosen:
                decisions.append(Decision(record, None, self._detail(i)))
            elif not has_answer(record):
                decisions.append(Decision(record, "empty_answer", "the final answer has no letter or digit"))
            elif i in walk.why:
                decisions.append(Decision(record, *walk.why[i]))
            else:
                decisions.append(Decision(record, "over_budget", self._detail(i)))
        self._report(order, walk)
        return decisions

    def _detail(self, i: int) -> str:
        value = self._values[i]
        return "no score" if value is None else f"score {value:.4g}"

    def _report(self, order: list[int], walk: _Walk) -> None:
        chosen = walk.chosen
        self.details.update(
            {
                "budget": self.budget,
                "selected": len(chosen),
                "score": self.expression,
                "selected_per_group": dict(sorted(walk.taken["group"].items())),
                "score_cutoff": self._values[chosen[-1]] if chosen else None,
                "unscored": sum(self._values[i] is None for i in order),
                "source_clusters": {
                    "cluster_by": _cfg(self.config, "cluster_by", "source"),
                    "per_cluster": self.per_cluster,
                    "in_pool": len({self.clusters[i] for i in order}),
                    "largest_in_selection": max(walk.taken["cluster"].values(), default=0),
                },
                "domains": share_table([self.domains[i] for i in order], [self.domains[i] for i in chosen]),
                "scripts": share_table(
                    [script_of(self.records[i]) for i in order], [script_of(self.records[i]) for i in chosen]
                ),
                "stratify": _cfg(self.config, "stratify", "none"),
            }
        )
        if self.vectors is not None and chosen:
            self._spread(order, chosen)
        else:
            self.details["diversity_check"] = "not run: no embeddings (max_similarity: null)"

    def _spread(self, order: list[int], chosen: list[int]) -> None:
        """Selection vs a seeded random subset of the same size vs the pool, by one measure; fail or warn."""
        rand = [order[k] for k in random_subset(len(order), len(chosen))]
        pool = [order[k] for k in random_subset(len(order), 512, seed=1)]
        self._encode(sorted({*rand, *pool} - self.embedded), "spread")
        check = spread_check(
            self.vectors[chosen], self.vectors[rand], self.vectors[pool], pool_size=len(order)
        )
        self.details["embedding"] = check["embedding"] = _cfg(self.config, "embedding", "minilm")
        self.details["embedding_spread"] = check
        if check["more_diverse_than_random"] is False:
            message = (
                f"select: the selection is not more diverse than a random subset of the same size "
                f"(spread {check['selected']} vs {check['random_same_size']}, {check['measure']}); "
                "lower select.max_similarity, use max_similarity: auto, or set select.on_not_diverse: warn"
            )
            if _cfg(self.config, "on_not_diverse", "fail") == "fail":
                raise DataError(message)
            self.details["warning"] = message
