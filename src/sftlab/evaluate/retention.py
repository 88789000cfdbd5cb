"""The retention gate: did fine-tuning cost general ability? Benchmark accuracy against the base model's.

>>> v = retention_gate(0.40, 0.35, threshold=0.02, action="warn")
>>> v.passed, round(v.drop, 2), v.status
(False, 0.05, 'warn')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sftlab.errors import SftlabError


class RetentionError(SftlabError):
    """Raised (after the report is written) when the gate trips with ``retention.action: fail``."""

    exit_code = 3


@dataclass
class RetentionVerdict:
    """One model's benchmark accuracy against the base model's, and what the gate says about it."""

    base: float
    tuned: float
    drop: float
    threshold: float
    action: str
    passed: bool
    status: str  # "pass" | "warn" | "fail"
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


def retention_gate(base: float, tuned: float, *, threshold: float, action: str = "warn") -> RetentionVerdict:
    """Pass when ``tuned`` is at most ``threshold`` (absolute accuracy) below ``base``."""
    drop = base - tuned
    passed = drop <= threshold + 1e-12
    status = "pass" if passed else ("fail" if action == "fail" else "warn")
    if passed:
        message = f"retention ok: {tuned:.1%} vs base {base:.1%} (drop {drop:+.1%} <= {threshold:.1%})"
    else:
        message = (
            f"retention {status}: benchmark accuracy fell from {base:.1%} to {tuned:.1%} "
            f"(drop {drop:.1%} > allowed {threshold:.1%}); mix general data into training "
            "(data.sources[].general: true), lower the learning rate or the epochs, or use a smaller LoRA rank"
        )
    return RetentionVerdict(base, tuned, drop, threshold, action, passed, status, message)
