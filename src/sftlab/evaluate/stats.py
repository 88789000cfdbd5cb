"""Intervals and paired tests for evaluation numbers: a score without its uncertainty cannot gate anything.

Pure functions on counts and lists, no scipy: binomial tails are summed in log space, the
normal quantile is :func:`statistics.NormalDist`'s.

>>> lo, hi = wilson_interval(114, 200)
>>> round(lo, 3), round(hi, 3)
(0.501, 0.637)
>>> round(mcnemar_p(losses=9, gains=1), 4)
0.0107
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist


def z_value(confidence: float) -> float:
    """Two-sided normal quantile: 1.96 for 0.95."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(right: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion; honest near 0 and 1 and for small n (Wald's is not).

    >>> wilson_interval(0, 0)
    (0.0, 1.0)
    """
    if n <= 0:
        return 0.0, 1.0
    z = z_value(confidence)
    p = right / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo = 0.0 if right == 0 else max(0.0, centre - half)  # exact at the ends (rounding would miss 1.0)
    hi = 1.0 if right == n else min(1.0, centre + half)
    return lo, hi


def paired_drop_interval(losses: int, gains: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Interval of the accuracy drop (losses − gains)/n of two models on the same n questions.

    ``losses``: questions the first model got right and the second wrong; ``gains``: the reverse.
    Agresti–Min: half a question added to each discordant cell, then Wald; good coverage even
    when few answers changed.

    >>> [round(x, 3) for x in paired_drop_interval(30, 10, 500)]
    [0.015, 0.065]
    """
    if n <= 0:
        return -1.0, 1.0
    b, c, m = losses + 0.5, gains + 0.5, n + 2
    d = (b - c) / m
    se = math.sqrt(max((b + c) - (b - c) ** 2 / m, 0.0)) / m
    z = z_value(confidence)
    return max(-1.0, d - z * se), min(1.0, d + z * se)


def binomial_tail(k: int, m: int, p: float = 0.5) -> float:
    """P(X >= k) for X ~ Binomial(m, p).

    >>> binomial_tail(5, 5)
    0.03125
    """
    if k <= 0:
        return 1.0
    if k > m:
        return 0.0
    if p >= 1.0:
        return 1.0
    if p <= 0.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(m + 1) - math.lgamma(j + 1) - math.lgamma(m - j + 1) + j * log_p + (m - j) * log_q
        for j in range(k, m + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def mcnemar_p(losses: int, gains: int) -> float:
    """One-sided exact McNemar p-value that the second model is worse: P(X >= losses), X ~ Bin(losses + gains, ½).

    Only the questions whose answer changed carry information about a change.
    """
    return binomial_tail(losses, losses + gains)


def mcnemar_two_sided(a: int, b: int) -> float:
    """Two-sided exact McNemar p-value that two models differ, from the changed answers each got right.

    >>> round(mcnemar_two_sided(23, 7), 4), mcnemar_two_sided(6, 6)
    (0.0052, 1.0)
    """
    return min(1.0, 2 * binomial_tail(max(a, b), a + b)) if a + b else 1.0


def _critical_losses(m: int, alpha: float) -> int:
    """Fewest losses among m changed answers that the exact test calls a significant drop (m + 1: never)."""
    lo, hi = 0, m + 1
    while lo < hi:  # the tail shrinks as k grows: binary search for the first k with tail <= alpha
        mid = (lo + hi) // 2
        if binomial_tail(mid, m) <= alpha:
            hi = mid
        else:
            lo = mid + 1
    return lo


def detectable_drop(n: int, changed: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true drop (share of n) the one-sided exact McNemar test catches with ``power``.

    ``changed`` is how many answers differ between the two models (the discordant pairs): the
    more answers move, the noisier the difference, the larger a drop must be to show. A drop of
    d needs at least d·n changed answers, so m = max(changed, d·n); with m fixed, the losses
    are Binomial(m, (1 + d·n/m)/2).

    >>> detectable_drop(570, 0)  # nothing moved: five lost questions would already be significant
    0.008771929824561403
    >>> round(detectable_drop(570, 57), 3)  # one answer in ten moved
    0.035
    >>> detectable_drop(8, 0)  # a tiny set cannot show any drop below five of its eight questions
    0.625
    """
    if n <= 0:
        return 1.0

    def caught(k: int) -> bool:  # k = d·n questions lost on balance
        m = max(changed, k)
        p = min(1.0, (1 + k / m) / 2) if m else 0.5
        return binomial_tail(_critical_losses(m, alpha), m, p) >= power

    lo, hi = 1, n
    if not caught(hi):
        return 1.0
    while lo < hi:  # more lost questions are always easier to catch: binary search
        mid = (lo + hi) // 2
        if caught(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo / n


def ratio_interval(
    numerators: Sequence[float], denominators: Sequence[float], confidence: float = 0.95
) -> tuple[float, float, float]:
    """``(estimate, low, high)`` of Σnum/Σden over records (e.g. token-mean loss: summed loss / tokens).

    Records are the unit that was sampled, so the interval comes from their spread
    (linearised ratio estimator): a long record weighs more, as it does in the estimate.

    >>> [round(x, 3) for x in ratio_interval([2.0, 4.0, 3.0, 5.0], [1, 2, 1, 2])]
    [2.333, 1.936, 2.731]
    """
    n = len(numerators)
    total = sum(denominators)
    if n == 0 or total <= 0:
        return math.nan, math.nan, math.nan
    est = sum(numerators) / total
    if n < 2:
        return est, math.nan, math.nan
    resid = [x - est * w for x, w in zip(numerators, denominators, strict=True)]
    se = math.sqrt(sum(r * r for r in resid) * n / (n - 1)) / total
    z = z_value(confidence)
    return est, est - z * se, est + z * se


def paired_ratio_shift(
    before: Sequence[tuple[float, float]], after: Sequence[tuple[float, float]], confidence: float = 0.95
) -> tuple[float, float, float]:
    """``(shift, low, high)`` of Σnum/Σden from ``before`` to ``after`` on the same records ``(num, den)``.

    Paired: each record's own change is what varies, so a shift far smaller than either
    interval's width can still be significant (the same hard records stay hard).

    >>> [round(x, 3) for x in paired_ratio_shift([(2, 1), (4, 2), (3, 1)], [(2.2, 1), (4.4, 2), (3.3, 1)])]
    [0.225, 0.169, 0.281]
    """
    n = len(before)
    if n != len(after):
        raise ValueError(f"paired records differ in number: {n} before, {len(after)} after")
    tot_b, tot_a = sum(d for _, d in before), sum(d for _, d in after)
    if n == 0 or tot_b <= 0 or tot_a <= 0:
        return math.nan, math.nan, math.nan
    est_b, est_a = sum(x for x, _ in before) / tot_b, sum(x for x, _ in after) / tot_a
    shift = est_a - est_b
    if n < 2:
        return shift, math.nan, math.nan
    resid = [
        (xa - est_a * da) / tot_a - (xb - est_b * db) / tot_b
        for (xb, db), (xa, da) in zip(before, after, strict=True)
    ]
    se = math.sqrt(sum(r * r for r in resid) * n / (n - 1))
    z = z_value(confidence)
    return shift, shift - z * se, shift + z * se
