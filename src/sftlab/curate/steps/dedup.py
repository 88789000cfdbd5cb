"""Deduplication: exact (normalised hash), near (MinHash + LSH), instruction similarity (ROUGE-L).

One record per cluster is kept by a stated rule (``keep: first | longest_answer
| best_score``); every other member is removed with ``exact_duplicate`` /
``near_duplicate`` / ``similar_instruction`` and the id it duplicates. Cluster
ids go to ``details["clusters"]`` for the report.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from sftlab.curate.steps.base import Decision, GlobalStep
from sftlab.curate.steps.minhash import MinHasher, exact_jaccard, near_duplicate_clusters
from sftlab.curate.steps.rouge import RougeIndex
from sftlab.curate.steps.spool import RecordSpool
from sftlab.curate.steps.text import field_text, norm_key
from sftlab.data.record import Conversation, Record
from sftlab.errors import RecipeError
from sftlab.recipe.sections.curation import ExactDedupConfig, MinHashDedupConfig, RougeDedupConfig
from sftlab.utils.progress import track

MAX_CLUSTERS_IN_DETAILS = 200


def record_id(record: Record, index: int) -> str:
    """The record's id, or its position (``#12``) when it has none."""
    return record.meta.id if record.meta.id is not None else f"#{index}"


def score_of(record: Record, name: str | None) -> float:
    """``meta.extra["scores"][name]`` as set by scoring steps (−inf when absent)."""
    scores = record.meta.extra.get("scores") or {}
    value = scores.get(name) if name else None
    return float(value) if isinstance(value, int | float) else float("-inf")


def choose_keeper(records: list[Record], members: list[int], keep: str, score: str | None = None) -> int:
    """The member that stays: the first, the one with the longest answer, or the best score (ties: first).

    >>> from sftlab.data.record import Turn
    >>> recs = [Conversation([Turn("user", "q"), Turn("assistant", a)]) for a in ("short", "much longer")]
    >>> choose_keeper(recs, [0, 1], "first"), choose_keeper(recs, [0, 1], "longest_answer")
    (0, 1)
    """
    if keep == "first":
        return min(members)
    if keep == "longest_answer":

        def key(i: int) -> tuple[int, int]:
            r = records[i]
            answer = r.response if isinstance(r, Conversation) else r.text
            return (len(answer), -i)

        return max(members, key=key)
    return max(members, key=lambda i: (score_of(records[i], score), -i))


class _ClusterDedup(GlobalStep):
    """Shared by exact and near dedup: clusters in, one keeper per cluster out."""

    reason = "duplicate"

    def __init__(self, cfg):
        super().__init__(cfg.action)
        self.cfg = cfg
        if cfg.keep == "best_score" and not cfg.score:
            raise RecipeError([f"curation step {cfg.type}: keep: best_score needs 'score' (the score name)"])

    def clusters(self, records: list[Record]) -> list[list[int]]:
        raise NotImplementedError

    def decide(self, records: list[Record]) -> list[Decision]:
        removed = self.removals(records, self.clusters(records))
        return [
            Decision(r, self.reason, removed[i]) if i in removed else Decision(r)
            for i, r in enumerate(records)
        ]

    def removals(self, records: Sequence[Record], clusters: list[list[int]]) -> dict[int, str]:
        """``{index: detail}`` of every record that is not its cluster's keeper; fills ``self.details``.

        Only cluster members are looked at, so ``records`` may be an on-disk :class:`RecordSpool`.
        """
        removed: dict[int, str] = {}
        shown: list[dict] = []
        for members in clusters:
            keeper = choose_keeper(records, members, self.cfg.keep, getattr(self.cfg, "score", None))
            kept = records[keeper]
            kept_id = record_id(kept, keeper)
            for i in members:
                if i != keeper:
                    removed[i] = f"duplicate of {kept_id}"
            if len(shown) < MAX_CLUSTERS_IN_DETAILS:
                shown.append(
                    {
                        "kept": kept_id,
                        "removed": [record_id(records[i], i) for i in members if i != keeper],
                        "size": len(members),
                        "text": field_text(kept, self.cfg.field)[:200],
                    }
                )
        self.details = {
            "keep": self.cfg.keep,
            "cluster_count": len(clusters),
            "records_in_clusters": sum(len(c) for c in clusters),
            "clusters": shown,
        }
        return removed


class ExactDedup(_ClusterDedup):
    """``exact_duplicate``: same text after casefolding and collapsing whitespace."""

    reason = "exact_duplicate"

    def __init__(self, cfg: ExactDedupConfig | None = None):
        super().__init__(cfg or ExactDedupConfig())

    def key(self, record: Record) -> bytes:
        return hashlib.blake2b(norm_key(field_text(record, self.cfg.field)).encode(), digest_size=16).digest()

    def clusters(self, records: list[Record]) -> list[list[int]]:
        groups: dict[bytes, list[int]] = {}
        for i, r in enumerate(records):
            groups.setdefault(self.key(r), []).append(i)
        return [g for g in groups.values() if len(g) > 1]

    def apply(self, records: Iterable[Record]) -> Iterator[Decision]:
        """``keep: first`` streams (16 bytes per distinct text held); other rules need every record."""
        if self.cfg.keep != "first":
            yield from super().apply(records)
            return
        # key → kept id; becomes [kept id, size, first removed ids, text] once a duplicate shows up (the
        # duplicate's text is the kept one's up to case and spaces, so the report shows it without holding texts).
        first: dict[bytes, str | list] = {}
        clusters: list[list] = []
        for i, r in enumerate(records):
            key = self.key(r)
            seen = first.get(key)
            if seen is None:
                first[key] = record_id(r, i)
                yield Decision(r)
                continue
            if isinstance(seen, str):
                shown = len(clusters) < MAX_CLUSTERS_IN_DETAILS
                seen = first[key] = [seen, 1, [], field_text(r, self.cfg.field)[:200] if shown else ""]
                clusters.append(seen)
            seen[1] += 1
            if len(seen[2]) < 10:
                seen[2].append(record_id(r, i))
            yield Decision(r, self.reason, f"duplicate of {seen[0]}")
        self.details = {
            "keep": "first",
            "cluster_count": len(clusters),
            "records_in_clusters": sum(c[1] for c in clusters),
            "clusters": [
                {"kept": kept, "size": size, "removed": removed, "text": text}
                for kept, size, removed, text in clusters[:MAX_CLUSTERS_IN_DETAILS]
            ],
        }


class MinHashDedup(_ClusterDedup):
    """``near_duplicate``: estimated Jaccard of shingle sets ≥ threshold (MinHash + LSH)."""

    reason = "near_duplicate"

    def __init__(self, cfg: MinHashDedupConfig | None = None):
        cfg = cfg or MinHashDedupConfig()
        super().__init__(cfg)
        self.hasher = MinHasher(cfg.num_perm, cfg.ngram, cfg.shingle, cfg.seed)

    def clusters(self, records: Sequence[Record]) -> list[list[int]]:
        sig = self.signatures(iter(records), len(records))
        exact = exact_jaccard(self.hasher, lambda i: field_text(records[i], self.cfg.field))
        return near_duplicate_clusters(sig, self.cfg.threshold, exact=exact)

    def signatures(self, records: Iterator[Record], total: int | None = None) -> np.ndarray:
        """Signatures chunk by chunk: num_perm × 4 bytes per record stay in memory, not the texts."""
        chunks, texts = [], []
        for r in track(records, f"{self.name}: signatures", total=total):
            texts.append(field_text(r, self.cfg.field))
            if len(texts) == 8192:
                chunks.append(self.hasher.signatures(texts))
                texts = []
        if texts or not chunks:
            chunks.append(self.hasher.signatures(texts))
        return np.concatenate(chunks)

    def apply(self, records: Iterable[Record]) -> Iterator[Decision]:
        """Records wait on disk while signatures are computed, so memory grows by the signatures only."""
        with RecordSpool() as spool:
            sig = self.signatures(spool.tee(records))
            exact = exact_jaccard(self.hasher, lambda i: field_text(spool[i], self.cfg.field))
            removed = self.removals(spool, near_duplicate_clusters(sig, self.cfg.threshold, exact=exact))
            for i, r in enumerate(spool):
                yield Decision(r, self.reason, removed[i]) if i in removed else Decision(r)


class RougeDedup(GlobalStep):
    """``similar_instruction``: ROUGE-L F ≥ threshold with an instruction already kept (Self-Instruct's rule)."""

    def __init__(self, cfg: RougeDedupConfig | None = None):
        cfg = cfg or RougeDedupConfig()
        super().__init__(cfg.action)
        self.cfg = cfg

    def decide(self, records: list[Record]) -> list[Decision]:
        index = RougeIndex()
        kept_ids: list[str] = []
        decisions: list[Decision] = []
        clusters: dict[str, list[str]] = {}
        texts: dict[str, str] = {}  # what a shown cluster is about: its first similar instruction
        for i, r in enumerate(track(records, f"{self.name}: rouge-l")):
            text = field_text(r, self.cfg.field)
            score, doc = index.first_at_least(text, self.cfg.threshold)
            if doc is None:
                index.add(text)
                kept_ids.append(record_id(r, i))
                decisions.append(Decision(r))
            else:
                other = kept_ids[doc]
                if other not in clusters and len(clusters) < MAX_CLUSTERS_IN_DETAILS:
                    texts[other] = text[:200]
                clusters.setdefault(other, []).append(record_id(r, i))
                decisions.append(Decision(r, "similar_instruction", f"rouge_l {score:.2f} with {other}"))
        self.details = {
            "threshold": self.cfg.threshold,
            "cluster_count": len(clusters),
            "clusters": [
                {"kept": k, "removed": v, "size": len(v) + 1, "text": texts.get(k, "")}
                for k, v in list(clusters.items())[:MAX_CLUSTERS_IN_DETAILS]
            ],
        }
        return decisions
