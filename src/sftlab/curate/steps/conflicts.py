"""``conflicts``: the same (or nearly the same) prompt with answers that disagree.

Answers in a prompt group are sorted into agreement classes: by ``meta.label``
when every record has one; by canonical JSON value for JSON answers; by
normalised text for short answers; otherwise two answers agree when their
numbers are the same and their token-set similarity reaches
``min_answer_similarity``. A group with more than one class is a conflict.

Policies: ``drop_all`` (``conflict``), ``keep_majority`` (the largest class
stays, the others are ``conflict_minority``; a tie drops everything as
``conflict_tie``), ``keep_all_and_flag`` (kept, flagged ``conflicts:conflict``).
"""

from __future__ import annotations

import json
import re

import numpy as np
from rapidfuzz import fuzz

from sftlab.curate.steps.base import Decision, GlobalStep
from sftlab.curate.steps.dedup import MAX_CLUSTERS_IN_DETAILS, record_id
from sftlab.curate.steps.minhash import MinHasher, near_duplicate_clusters
from sftlab.curate.steps.text import norm_key, words
from sftlab.data.record import Conversation, Record
from sftlab.recipe.sections.curation import ConflictsConfig

_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*")
_FENCED = re.compile(r"^```(?:json)?\s*\n(.*?)\n?```$", re.DOTALL)
SHORT_ANSWER_WORDS = 8
PROMPT_PERM = 128


def _answer(record: Record) -> str:
    return record.response if isinstance(record, Conversation) else record.text


def _json_key(text: str) -> str | None:
    body = text.strip()
    m = _FENCED.match(body)
    if m:
        body = m.group(1)
    if not body.startswith(("{", "[")):
        return None
    try:
        return json.dumps(json.loads(body), sort_keys=True, ensure_ascii=False)
    except ValueError:
        return None


def answer_classes(records: list[Record], min_similarity: float) -> list[list[int]]:
    """Indices of ``records`` grouped into classes of agreeing answers.

    >>> from sftlab.data.record import Turn
    >>> mk = lambda a: Conversation([Turn("user", "2+2?"), Turn("assistant", a)])
    >>> answer_classes([mk("4"), mk("4."), mk("5")], 0.5)
    [[0, 1], [2]]
    """
    if all(r.meta.label is not None for r in records):
        keys = [norm_key(str(r.meta.label)) for r in records]
        return _group_by(keys)
    answers = [_answer(r) for r in records]
    json_keys = [_json_key(a) for a in answers]
    if any(k is not None for k in json_keys):
        return _group_by(
            [k if k is not None else norm_key(a) for k, a in zip(json_keys, answers, strict=True)]
        )
    if all(len(words(a)) <= SHORT_ANSWER_WORDS for a in answers):
        return _group_by([" ".join(words(a)) for a in answers])
    classes: list[list[int]] = []
    for i, a in enumerate(answers):
        numbers = set(_NUMBER.findall(a))
        for cls in classes:
            rep = answers[cls[0]]
            if set(_NUMBER.findall(rep)) == numbers and fuzz.token_set_ratio(a, rep) >= 100 * min_similarity:
                cls.append(i)
                break
        else:
            classes.append([i])
    return classes


def _group_by(keys: list[str]) -> list[list[int]]:
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    return list(groups.values())


class ConflictStep(GlobalStep):
    """Finds prompt groups whose answers disagree and applies the policy."""

    def __init__(self, cfg: ConflictsConfig | None = None):
        cfg = cfg or ConflictsConfig()
        # keep_all_and_flag is the generic flag action of every step.
        super().__init__("flag" if cfg.policy == "keep_all_and_flag" else cfg.action)
        self.cfg = cfg

    @staticmethod
    def prompt_key(record: Record) -> str | None:
        """The exact-match group of one record (None: no prompt, never in a group). A record alone
        under its key is in no group, so it can never conflict: the Ray executor decides over the
        records whose key is shared only."""
        prompt = record.prompt_text() if isinstance(record, Conversation) else ""
        return norm_key(prompt) if prompt else None

    @staticmethod
    def prompt_signatures(records: list[Record]) -> np.ndarray:
        """MinHash signatures of the prompts (``match: minhash``), one row per record."""
        prompts = [r.prompt_text() if isinstance(r, Conversation) else "" for r in records]
        return MinHasher(num_perm=PROMPT_PERM, ngram=2).signatures(prompts)

    def prompt_groups(self, records: list[Record]) -> list[list[int]]:
        if self.cfg.match == "minhash":
            return near_duplicate_clusters(self.prompt_signatures(records), self.cfg.threshold)
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            key = self.prompt_key(r)
            if key is not None:
                groups.setdefault(key, []).append(i)
        return [g for g in groups.values() if len(g) > 1]

    def decide(self, records: list[Record], positions: list[int] | None = None) -> list[Decision]:
        """``positions``: where each record stands in the whole input (names ``#12`` for records
        without id), when ``records`` are the candidates only."""
        pos = positions if positions is not None else range(len(records))
        decisions = [Decision(r) for r in records]
        shown: list[dict] = []
        conflicts = 0
        for group in self.prompt_groups(records):
            classes = answer_classes([records[i] for i in group], self.cfg.min_answer_similarity)
            if len(classes) < 2:
                continue
            conflicts += 1
            classes = sorted(([group[j] for j in c] for c in classes), key=len, reverse=True)
            policy = self.cfg.policy
            if policy == "keep_majority" and len(classes[0]) > len(classes[1]):
                kept = set(classes[0])
                for i in group:
                    if i not in kept:
                        decisions[i] = Decision(
                            records[i], "conflict_minority", f"{len(classes)} answer classes"
                        )
            else:
                reason = "conflict_tie" if policy == "keep_majority" else "conflict"
                kept = set()
                for i in group:
                    decisions[i] = Decision(records[i], reason, f"{len(classes)} answer classes")
            if len(shown) < MAX_CLUSTERS_IN_DETAILS:
                shown.append(
                    {
                        "prompt": records[group[0]].prompt_text()[:200],
                        "classes": [
                            {
                                "ids": [record_id(records[i], pos[i]) for i in c],
                                "answer": _answer(records[c[0]])[:120],
                            }
                            for c in classes
                        ],
                        "kept": [record_id(records[i], pos[i]) for i in sorted(kept)],
                    }
                )
        self.details = {"policy": self.cfg.policy, "conflict_groups": conflicts, "groups": shown}
        return decisions
