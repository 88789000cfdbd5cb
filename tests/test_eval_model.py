"""Evaluation with real tiny models: training helps the task score, damage trips the gate, latency fits a line."""

from __future__ import annotations

import pytest
import torch

from eval_helpers import damage, mammal_records, toy_questions, train_on_questions, train_on_records
from sftlab.evaluate.generation import generate_batch
from sftlab.evaluate.loss import per_sample_loss, worst
from sftlab.evaluate.metrics import accuracy
from sftlab.evaluate.multiple_choice import evaluate_questions
from sftlab.evaluate.retention import retention_gate
from sftlab.evaluate.samples import to_samples


def _task_accuracy(model, tokenizer, samples):
    gens = generate_batch(model, tokenizer, [s.messages for s in samples], max_new_tokens=4, batch_size=4)
    return accuracy([g.text for g in gens], [s.expected for s in samples]), gens


def test_trained_model_scores_higher_and_has_lower_loss(tiny_model, tokenizer):
    records = mammal_records()
    samples = to_samples(records)
    before, _ = _task_accuracy(tiny_model, tokenizer, samples)
    loss_before, _ = per_sample_loss(tiny_model, tokenizer, records, batch_size=3)
    train_on_records(tiny_model, tokenizer, records)
    after, gens = _task_accuracy(tiny_model, tokenizer, samples)
    loss_after, skipped = per_sample_loss(tiny_model, tokenizer, records, batch_size=3)
    assert after > before
    assert after >= 0.5
    assert all(g.text in ("yes", "no") for g in gens)
    assert skipped == {}
    assert sum(x.loss for x in loss_after) < sum(x.loss for x in loss_before)
    assert [x.id for x in loss_after] == [r.meta.id for r in records]
    assert all(x.tokens == 2 for x in loss_after)  # the answer word and <|im_end|>
    top = worst(loss_after, 3)
    assert len(top) == 3 and top[0].loss == max(x.loss for x in loss_after)


def test_per_sample_loss_batched_equals_single(tiny_model, tokenizer):
    records = mammal_records()
    batched, _ = per_sample_loss(tiny_model, tokenizer, records, batch_size=8)
    single, _ = per_sample_loss(tiny_model, tokenizer, records, batch_size=1)
    assert [b.loss for b in batched] == pytest.approx([s.loss for s in single], abs=1e-4)


def test_batched_generation_equals_one_at_a_time(tiny_model, tokenizer):
    records = mammal_records()
    train_on_records(tiny_model, tokenizer, records, steps=10)
    prompts = [s.messages for s in to_samples(records)]
    prompts[0] = [
        {"role": "system", "content": "A much longer system prompt to force left padding."},
        *prompts[0],
    ]
    batched = generate_batch(tiny_model, tokenizer, prompts, max_new_tokens=5, batch_size=8)
    single = generate_batch(tiny_model, tokenizer, prompts, max_new_tokens=5, batch_size=1)
    assert [g.text for g in batched] == [g.text for g in single]
    assert [g.new_tokens for g in batched] == [g.new_tokens for g in single]


def test_retention_gate_trips_on_a_damaged_model_and_passes_unchanged(tiny_model, tokenizer):
    questions = toy_questions(60)
    train_on_questions(tiny_model, tokenizer, questions, steps=60)
    base = evaluate_questions(tiny_model, tokenizer, questions, batch_size=16)
    assert base.accuracy >= 0.9  # it learnt the benchmark, so forgetting is measurable
    same = evaluate_questions(tiny_model, tokenizer, questions, batch_size=16)
    ok = retention_gate(base.correct, same.correct, threshold=0.15)
    assert (ok.status, ok.losses, ok.gains) == ("pass", 0, 0)
    assert ok.detectable_drop == pytest.approx(5 / 60)  # five lost answers would be significant
    damage(tiny_model)
    hurt = evaluate_questions(tiny_model, tokenizer, questions, batch_size=16)
    verdict = retention_gate(base.correct, hurt.correct, threshold=0.15, action="fail")
    assert not verdict.passed and verdict.status == "fail"
    assert verdict.losses > 20 and verdict.p_value < 1e-6 and verdict.drop_ci95[0] > 0.15
    # the same damage on eight questions: a drop is seen but the set is too small to call it
    eight = [q.answer == p for q, p in zip(questions[:8], hurt.predictions[:8], strict=True)]
    small = retention_gate(base.correct[:8], [True] * 7 + [False], threshold=0.15)
    assert small.status == "too small" and "too small to tell" in small.message
    assert small.detectable_drop == pytest.approx(5 / 8)
    huge = retention_gate(base.correct[:8], eight, threshold=0.15)
    assert huge.status == "warn"  # six of eight lost: a drop that large shows even there


def test_latency_fit_medians_spread_and_interleaving(tiny_model, tokenizer):
    from sftlab.evaluate.latency import measure_latency_many
    from sftlab.testing import tiny_llama

    torch.manual_seed(0)
    other = tiny_llama(tokenizer, seed=1)
    reports = measure_latency_many(
        {"a": (tiny_model, tokenizer), "b": (other, tokenizer)},
        [{"role": "user", "content": "Count to ten."}],
        token_counts=[2, 4, 8, 12, 16],
        prompt_lengths=[8, 16, 32, 48, 64],
        repeats=3,
        warmup=1,
        max_spread=100.0,
    )
    for rep in reports.values():
        assert [p.x for p in rep.points] == [2, 4, 8, 12, 16]
        assert all(len(p.times) == 3 and p.median > 0 for p in rep.points)
        assert rep.fit.r2 is not None and -1.0 <= rep.fit.r2 <= 1.0  # five points: R² means something
        lo, hi = rep.tokens_per_s_range()
        assert 0 < lo <= hi
        d = rep.to_dict()
        assert {
            "k_s_per_token",
            "b_s",
            "r2",
            "tokens_per_s",
            "tokens_per_s_range",
            "ttft",
            "warnings",
        } <= set(d)
        assert [p["x"] for p in d["ttft"]] == [8, 16, 32, 48, 64] and d["repeats"] == 3
        # 3 repeats and 5 lengths: no warning about the set-up (a busy machine may still lower R²)
        assert not [w for w in d["warnings"] if "repeat(s)" in w or "output lengths" in w or "disagree" in w]


def test_latency_warns_on_two_points_one_repeat_and_spread(tiny_model, tokenizer):
    from sftlab.evaluate.latency import LatencyReport, Point, _warnings, measure_latency

    rep = measure_latency(
        tiny_model,
        tokenizer,
        [{"role": "user", "content": "Hi"}],
        token_counts=[1, 2],
        prompt_lengths=[8],
        repeats=1,
    )
    assert rep.fit.r2 is None and rep.to_dict()["r2"] is None  # a line through two points always fits
    assert any("1 repeat" in w for w in rep.warnings) and any("2 output lengths" in w for w in rep.warnings)
    noisy = LatencyReport([Point(4, [1.0, 1.0, 2.0]), Point(8, [2.0, 2.1, 2.0])], [], 10, 0.25)
    assert "disagree by up to 100%" in _warnings(noisy, 3, 0.25)[0]
