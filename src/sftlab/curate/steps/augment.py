"""``augment``: noisy prompt variants (typos, casing, spacing, punctuation) added as new records.

Answers are never changed: the model should answer a sloppy prompt as well as
a clean one. Each variant gets id ``<id>~aug<k>`` and
``meta.provenance["augmented_from"]``; the runner's accounting becomes
in + added = kept + rejected.

>>> rng = random.Random(0)
>>> noisy_prompt("Please explain how photosynthesis works.", ["casing"], 0.0, rng)
'PLEASE EXPLAIN HOW PHOTOSYNTHESIS WORKS.'
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator

from sftlab.curate.steps.base import Decision, Step
from sftlab.curate.steps.dedup import record_id
from sftlab.data.record import Conversation, Record, record_from_dict
from sftlab.recipe.sections.curation import AugmentConfig


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(("swap", "drop", "double"))
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def noisy_prompt(text: str, noise: list[str], typo_rate: float, rng: random.Random) -> str:
    """One noisy variant of ``text`` (each noise kind applied once)."""
    if "typos" in noise:
        parts = re.split(r"(\s+)", text)
        for j, w in enumerate(parts):
            if len(w) >= 4 and w.isalpha() and rng.random() < typo_rate:
                parts[j] = _typo(w, rng)
        text = "".join(parts)
    if "casing" in noise:
        text = text.lower() if rng.random() < 0.7 else text.upper()
    if "spacing" in noise and " " in text:
        spaces = [m.start() for m in re.finditer(" ", text)]
        at = rng.choice(spaces)
        text = text[:at] + "  " + text[at + 1 :]
    if "punctuation" in noise:
        stripped = text.rstrip()
        text = (
            stripped[:-1]
            if stripped and stripped[-1] in ".?!。？！"
            else stripped + rng.choice(("?", "??", "!"))
        )
    return text


class AugmentStep(Step):
    """Keeps every record and adds ``fraction`` noisy variants per record (seeded)."""

    def __init__(self, cfg: AugmentConfig | None = None):
        cfg = cfg or AugmentConfig()
        super().__init__(cfg.action)
        self.cfg = cfg

    def apply(self, records: Iterable[Record]) -> Iterator[Decision]:
        rng = random.Random(self.cfg.seed)
        whole, part = divmod(self.cfg.fraction, 1)
        for i, record in enumerate(records):
            # Variants are copied before the original is yielded: steps downstream (flags) change it in place.
            variants = []
            if isinstance(record, Conversation):
                n = int(whole) + (1 if rng.random() < part else 0)
                variants = [self._variant(record, record_id(record, i), k, rng) for k in range(n)]
            yield Decision(record)
            yield from (Decision(v, added=True) for v in variants if v is not None)

    def _variant(self, record: Conversation, rid: str, k: int, rng: random.Random) -> Record | None:
        turn = next((t for t in record.turns if t.role == "user"), None)
        if turn is None:
            return None
        noisy = noisy_prompt(turn.content, list(self.cfg.noise), self.cfg.typo_rate, rng)
        if noisy == turn.content:
            return None
        copy = record_from_dict(record.to_dict())
        next(t for t in copy.turns if t.role == "user").content = noisy
        copy.meta.id = f"{rid}~aug{k + 1}"
        copy.meta.provenance["augmented_from"] = rid
        copy.meta.provenance["augmentation"] = list(self.cfg.noise)
        copy.meta.extra.pop("split", None)
        return copy
