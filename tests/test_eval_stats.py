"""The statistics behind the gate, checked against brute force and by simulation (seeded, fast)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sftlab.evaluate.stats import (
    binomial_tail,
    detectable_drop,
    mcnemar_p,
    paired_drop_interval,
    paired_ratio_shift,
    ratio_interval,
    wilson_interval,
)


def test_binomial_tail_and_mcnemar_equal_brute_force():
    for m in (0, 1, 7, 30, 200):
        for k in range(m + 2):
            want = sum(math.comb(m, j) for j in range(k, m + 1)) / 2**m
            assert binomial_tail(k, m) == pytest.approx(want, rel=1e-9, abs=1e-300)
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(5, 0) == 0.5**5
    assert binomial_tail(3, 10, 0.3) == pytest.approx(
        1 - sum(math.comb(10, j) * 0.3**j * 0.7 ** (10 - j) for j in range(3))
    )


@pytest.mark.parametrize(("n", "changed"), [(570, 57), (300, 60), (60, 0)])
def test_detectable_drop_has_the_promised_power(n, changed):
    """At the detectable drop the exact test rejects in >= 80% of simulated runs; one question less, fewer."""
    rng = np.random.default_rng(0)

    def power(k: int) -> float:
        m = max(changed, k)
        losses = rng.binomial(m, (1 + k / m) / 2, size=4000)
        return float(np.mean([mcnemar_p(int(x), m - int(x)) < 0.05 for x in losses]))

    k = round(detectable_drop(n, changed) * n)
    assert power(k) >= 0.78
    if changed:
        assert power(k - 2) < 0.8
    assert detectable_drop(n, changed) <= detectable_drop(n, changed + 40)  # more movement, more noise


def test_intervals_cover_the_truth_about_95_percent():
    rng = np.random.default_rng(1)
    n, reps = 300, 2000
    # accuracy 0.4: Wilson
    right = rng.binomial(n, 0.4, size=reps)
    cover = np.mean([lo <= 0.4 <= hi for lo, hi in (wilson_interval(int(r), n) for r in right)])
    assert 0.93 <= cover <= 0.97
    # paired drop: 8% of answers lost, 4% gained -> true drop 0.04
    cells = rng.multinomial(n, [0.08, 0.04, 0.88], size=reps)
    cover = np.mean(
        [lo <= 0.04 <= hi for lo, hi in (paired_drop_interval(int(b), int(c), n) for b, c, _ in cells)]
    )
    assert 0.93 <= cover <= 0.97


def test_token_mean_loss_intervals_cover_the_truth():
    """Records of 5-60 tokens, per-token loss 2.0 before and +0.1 after, with record-level noise."""
    rng = np.random.default_rng(2)
    hits_level = hits_shift = 0
    reps = 400
    for _ in range(reps):
        tokens = rng.integers(5, 60, size=120)
        hard = rng.normal(0, 0.5, size=120)  # some records are harder for both models
        before = tokens * (2.0 + hard + rng.normal(0, 0.3, size=120))
        after = before + tokens * (0.1 + rng.normal(0, 0.2, size=120))
        _, lo, hi = ratio_interval(before.tolist(), tokens.tolist())
        hits_level += lo <= 2.0 <= hi
        shift, lo, hi = paired_ratio_shift(
            list(zip(before, tokens, strict=True)), list(zip(after, tokens, strict=True))
        )
        hits_shift += lo <= 0.1 <= hi
    assert 0.91 <= hits_level / reps <= 0.98
    assert 0.91 <= hits_shift / reps <= 0.98
