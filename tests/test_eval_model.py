"""Evaluation with real tiny models: training helps the task score, damage trips the gate, latency fits a line."""

from __future__ import annotations

import pytest
import torch

from eval_helpers import damage, mammal_records, toy_questions, train_on_questions, train_on_records
from sftlab.evaluate.generation import generate_batch
from sftlab.evaluate.latency import measure_latency
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
    questions = toy_questions()
    train_on_questions(tiny_model, tokenizer, questions)
    base = evaluate_questions(tiny_model, tokenizer, questions, batch_size=4).accuracy
    assert base >= 0.75  # it learnt the benchmark, so forgetting is measurable
    same = evaluate_questions(tiny_model, tokenizer, questions, batch_size=4).accuracy
    assert retention_gate(base, same, threshold=0.05).passed
    damage(tiny_model)
    hurt = evaluate_questions(tiny_model, tokenizer, questions, batch_size=4).accuracy
    verdict = retention_gate(base, hurt, threshold=0.05, action="fail")
    assert not verdict.passed and verdict.status == "fail"


def test_latency_fit_returns_k_b_and_r2(tiny_model, tokenizer):
    torch.manual_seed(0)
    rep = measure_latency(
        tiny_model,
        tokenizer,
        [{"role": "user", "content": "Count to ten."}],
        token_counts=[2, 8, 16, 32],
        prompt_lengths=[8, 64],
        repeats=2,
    )
    assert [p[0] for p in rep.points] == [2, 8, 16, 32]
    assert all(t > 0 for _, t in rep.points)
    assert rep.fit.k > 0 and rep.tokens_per_s == pytest.approx(1 / rep.fit.k)
    assert -1.0 <= rep.fit.r2 <= 1.0 and rep.fit.b == rep.fit.b  # b is a number (not NaN)
    assert [p[0] for p in rep.ttft] == [8, 64]
    d = rep.to_dict()
    assert {"k_s_per_token", "b_s", "r2", "tokens_per_s", "ttft"} <= set(d)
