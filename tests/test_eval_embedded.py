"""The embedded 135M model on real MMLU questions (slow: run with -m slow)."""

from __future__ import annotations

import math

import pytest


@pytest.mark.slow
def test_embedded_model_mmlu_subset_and_generation():
    from sftlab.evaluate.generation import generate_batch
    from sftlab.evaluate.mmlu import load_mmlu, stratified_subset
    from sftlab.evaluate.multiple_choice import evaluate_questions
    from sftlab.models import load_model, load_tokenizer

    tokenizer = load_tokenizer("smollm2-135m-instruct")
    model = load_model("smollm2-135m-instruct", dtype="float32")
    pool = load_mmlu()
    questions = [pool[i] for i in stratified_subset(pool, 12, seed=0)]
    res = evaluate_questions(model, tokenizer, questions, batch_size=6)
    assert res.n == 12 and 0.0 <= res.accuracy <= 1.0
    # A trained LM puts real mass on the answer letters after "Answer:" (a random one: about 4/49,152;
    # this instruct model gives most of the rest to <|im_end|>).
    mass = [sum(math.exp(s) for s in row) for row in res.scores]
    assert all(0.005 < m <= 1.0 + 1e-6 for m in mass)
    assert sum(mass) / len(mass) > 0.05
    answers = generate_batch(
        model, tokenizer, [[{"role": "user", "content": "What is the capital of France?"}]], max_new_tokens=12
    )
    assert "Paris" in answers[0].text
