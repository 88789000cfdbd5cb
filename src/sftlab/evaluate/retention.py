"""The retention gate: did fine-tuning cost general ability? A paired test on the same questions.

Two accuracies side by side say little on a few hundred questions (each carries an interval of
several points). What the gate uses instead is which questions changed: ``losses`` (base
right, tuned wrong) against ``gains`` (the reverse), tested with the exact one-sided McNemar
test. Three outcomes:

- ``warn``/``fail`` (the recipe's ``action``): the drop is significant AND above the threshold;
- ``pass``: no significant drop above the threshold, and either the drop's 95% interval lies
  below the threshold, or the set could have shown one — the smallest drop it detects (80%
  power) is at most the threshold;
- ``too small``: neither: the set cannot detect a drop of the threshold's size, so "no drop
  seen" means nothing; the message says how large a drop it could detect.

>>> v = retention_gate([True] * 10 + [False] * 10, [False] * 10 + [False] * 10, threshold=0.02)
>>> v.status, v.drop, round(v.p_value, 4)
('warn', 0.5, 0.001)
>>> retention_gate([True, False] * 4, [True, False] * 4, threshold=0.02).status
'too small'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sftlab.errors import SftlabError
from sftlab.evaluate.stats import detectable_drop, mcnemar_p, paired_drop_interval, wilson_interval

TOO_SMALL = "too small"
ADVICE = (
    "mix general data into training (data.sources[].general: true), lower the learning rate or the epochs, "
    "or use a smaller LoRA rank"
)


class RetentionError(SftlabError):
    """Raised (after the report is written) when the gate trips with ``retention.action: fail``."""

    exit_code = 3


@dataclass
class RetentionVerdict:
    """One model's accuracy against the base model's on the same questions, and what the gate says."""

    base: float
    tuned: float
    base_ci95: tuple[float, float]
    tuned_ci95: tuple[float, float]
    n: int
    losses: int
    gains: int
    drop: float
    drop_ci95: tuple[float, float]
    p_value: float
    detectable_drop: float
    threshold: float
    action: str
    passed: bool
    status: str  # "pass" | "warn" | "fail" | "too small"
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


def retention_gate(
    base_correct: Sequence[bool],
    tuned_correct: Sequence[bool],
    *,
    threshold: float,
    action: str = "warn",
    alpha: float = 0.05,
    power: float = 0.8,
) -> RetentionVerdict:
    """Gate a tuned model against the base on the same questions (``*_correct[i]``: question i right)."""
    if len(base_correct) != len(tuned_correct):
        raise ValueError(
            f"the gate compares the same questions: base has {len(base_correct)}, tuned {len(tuned_correct)}"
        )
    n = len(base_correct)
    losses = sum(1 for b, t in zip(base_correct, tuned_correct, strict=True) if b and not t)
    gains = sum(1 for b, t in zip(base_correct, tuned_correct, strict=True) if t and not b)
    right_b, right_t = sum(map(bool, base_correct)), sum(map(bool, tuned_correct))
    drop = (losses - gains) / n if n else 0.0
    p = mcnemar_p(losses, gains)
    mdd = detectable_drop(n, losses + gains, alpha, power)
    base, tuned = (right_b / n, right_t / n) if n else (0.0, 0.0)
    lo, hi = paired_drop_interval(losses, gains, n, 0.95)
    tripped = p < alpha and drop > threshold + 1e-12
    if tripped:
        status = "fail" if action == "fail" else "warn"
    else:
        status = "pass" if mdd <= threshold + 1e-12 or hi <= threshold else TOO_SMALL
    head = (
        f"{tuned:.1%} vs base {base:.1%} on {n} questions: drop {drop:+.1%} (95% CI {lo:+.1%} to {hi:+.1%})"
    )
    if tripped:
        message = (
            f"retention {status}: {head}, {losses} answers lost and {gains} gained (p = {p:.2g}), above the "
            f"allowed {threshold:.1%}; {ADVICE}"
        )
    elif status == "pass":
        sure = f"below the allowed {threshold:.1%} with 95% confidence; " if hi <= threshold else ""
        message = f"retention ok: {head}; {sure}the set detects drops of {mdd:.1%} or more (threshold {threshold:.1%})"
    else:
        message = (
            f"retention too small to tell: {head}; this set detects drops of {mdd:.1%} or more, not the "
            f"{threshold:.1%} threshold: score more questions (evaluation.retention.questions) or raise the threshold"
        )
    return RetentionVerdict(
        base=base,
        tuned=tuned,
        base_ci95=wilson_interval(right_b, n),
        tuned_ci95=wilson_interval(right_t, n),
        n=n,
        losses=losses,
        gains=gains,
        drop=drop,
        drop_ci95=(lo, hi),
        p_value=p,
        detectable_drop=mdd,
        threshold=threshold,
        action=action,
        passed=status == "pass",
        status=status,
        message=message,
    )


def gate_models(
    results: dict[str, dict[str, Any]],
    mc: dict[str, dict[str, Any]],
    losses: dict[str, dict[str, Any]],
    base_label: str,
    cfg,
) -> dict[str, dict]:
    """Gate every non-base model on ``cfg.benchmark`` (the recipe's ``evaluation.retention``; paired, same
    questions) and add the general-loss shift to its results; returns the verdicts by model label."""
    from sftlab.evaluate.general_loss import loss_shift
    from sftlab.utils.progress import console

    out = {}
    for label in mc:
        if label == base_label:
            continue
        if base_label in losses and label in losses:
            results[label]["general_loss"]["shift"] = loss_shift(losses[base_label], losses[label])
            console.print(results[label]["general_loss"]["shift"]["message"], markup=False, highlight=False)
        name = cfg.benchmark
        if name is None or name not in mc[base_label] or name not in mc[label]:
            continue
        verdict = retention_gate(
            mc[base_label][name].correct,
            mc[label][name].correct,
            threshold=cfg.threshold,
            action=cfg.action,
            alpha=cfg.alpha,
            power=cfg.power,
        )
        out[label] = {"benchmark": name, **verdict.to_dict()}
        colour = {"pass": "green", "fail": "red", "warn": "yellow"}.get(verdict.status, "yellow")
        console.print(f"[{colour}]{label}: {verdict.message}[/]", highlight=False)
    return out
