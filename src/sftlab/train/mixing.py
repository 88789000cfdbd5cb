"""Data mixing: how often each training sample is shown per epoch, and the printed plan.

A source's ``weight`` and a task's ``task_upsample`` factor multiply into a
repetition factor per sample: 2 shows it twice per epoch, 0.5 shows a random
half of that source. The plan lists examples and tokens per source so the mix
(for example 8% general data) is visible before any GPU time is spent.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass
class PlanRow:
    """One source's share of an epoch."""

    source: str
    records: int
    factor: float
    examples: int
    tokens: int
    share: float = 0.0
    token_share: float = 0.0


@dataclass
class MixPlan:
    """Sample indices of one epoch (repeats allowed) and per-source accounting."""

    indices: list[int]
    rows: list[PlanRow] = field(default_factory=list)

    def to_dict(self) -> list[dict]:
        return [dict(vars(r)) for r in self.rows]

    def table(self) -> str:
        """A plain-text table of the plan.

        >>> plan = plan_mixture([{"source": "a", "n_tokens": 10}, {"source": "b", "n_tokens": 5}], {"b": 2})
        >>> print(plan.table())
        source  samples  factor  examples/epoch  tokens/epoch  share
        a             1    1.00               1            10  33.3%
        b             1    2.00               2            10  66.7%
        """
        head = ["source", "samples", "factor", "examples/epoch", "tokens/epoch", "share"]
        body = [
            [
                r.source,
                str(r.records),
                f"{r.factor:.2f}",
                str(r.examples),
                str(r.tokens),
                f"{100 * r.share:.1f}%",
            ]
            for r in self.rows
        ]
        widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
        lines = []
        for row in [head, *body]:
            cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)


def plan_mixture(
    samples: Sequence[Mapping],
    source_weights: Mapping[str, float] | None = None,
    task_upsample: Mapping[str, float] | None = None,
    seed: int = 42,
) -> MixPlan:
    """Expand sample indices by each sample's source weight × task factor.

    ``samples`` are mappings with ``source``, optional ``task`` and ``n_tokens``
    (trained tokens). A fractional factor keeps a seeded random subset for the
    fractional part, so the expected count is exact.
    """
    source_weights = source_weights or {}
    task_upsample = task_upsample or {}
    rng = random.Random(seed)
    by_factor: dict[float, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        f = source_weights.get(s.get("source") or "default", 1.0) * task_upsample.get(
            s.get("task") or "", 1.0
        )
        by_factor[f].append(i)
    counts = [0] * len(samples)
    for f, idx in by_factor.items():
        whole, frac = math.floor(f), f - math.floor(f)
        for i in idx:
            counts[i] = whole
        for i in rng.sample(idx, round(frac * len(idx))):
            counts[i] += 1
    indices = [i for i, c in enumerate(counts) for _ in range(c)]
    rows: dict[str, PlanRow] = {}
    for i, s in enumerate(samples):
        name = s.get("source") or "default"
        row = rows.setdefault(name, PlanRow(name, 0, source_weights.get(name, 1.0), 0, 0))
        row.records += 1
        row.examples += counts[i]
        row.tokens += counts[i] * int(s.get("n_tokens", 0))
    total_ex = sum(r.examples for r in rows.values()) or 1
    total_tok = sum(r.tokens for r in rows.values()) or 1
    for r in rows.values():
        r.factor = r.examples / max(1, r.records)
        r.share = r.examples / total_ex
        r.token_share = r.tokens / total_tok
    return MixPlan(indices, list(rows.values()))
