"""The decode batch alone: sequences that join and leave at chosen steps decode as ``generate`` does alone.

A tiny model with large random weights, so its greedy tokens depend on the whole context (the
standard tiny model repeats one token, which would hide a wrong position or a stale cache row).
The schedule is fixed, so these comparisons are deterministic.
"""

from __future__ import annotations

import pytest
import torch

from sftlab.serve.batch import DecodeBatch
from sftlab.serve.sequence import Sequence
from sftlab.serve.worker import Job, Sampling

LONG_PROMPT = "A much longer question about the weather in spring and summer?"
SCHEDULES = {
    "joins": [
        ("Hi", 12, 0),
        (LONG_PROMPT, 4, 0),
        ("Why is the sky blue?", 20, 3),
        ("One two three four", 9, 6),
    ],
    # the longest row leaves first and rows shorter than the sliding window remain: the cache is trimmed
    "trims": [(LONG_PROMPT, 3, 0), ("Hi", 10, 0), ("Why?", 10, 0), ("Ok", 6, 4)],
}
"""(prompt, max_new_tokens, the decode step it joins before)."""


def _chaotic(model):
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 0.5)
    return model.eval()


def _qwen3_sliding(tokenizer):
    """Layer 0 full attention, layer 1 a sliding window of 5 (shorter than every prompt here but one)."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        use_sliding_window=True,
        sliding_window=5,
        max_window_layers=1,
        tie_word_embeddings=True,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    return Qwen3ForCausalLM(config)


@pytest.fixture(params=["llama", "llama-repetition-penalty", "qwen3-sliding-window"])
def model(request, tokenizer, tiny_model):
    model = _chaotic(_qwen3_sliding(tokenizer) if request.param.startswith("qwen3") else tiny_model)
    if request.param == "llama-repetition-penalty":
        model.generation_config.repetition_penalty = 1.5
    return model


def _alone(model, tokenizer, ids: list[int], n: int) -> list[int]:
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([ids]), max_new_tokens=n, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    return out[0, len(ids) :].tolist()


def _run(batch: DecodeBatch, tokenizer, jobs_at: dict[int, list[Job]]) -> dict[int, list[int]]:
    """Step ``batch`` until every job is done, admitting ``jobs_at[step]`` before that step."""
    eos = {tokenizer.eos_token_id}
    done: dict[int, list[int]] = {}
    step, total = 0, sum(len(jobs) for jobs in jobs_at.values())
    with torch.inference_mode():
        while len(done) < total:
            if step in jobs_at:
                seqs = [Sequence(job, tokenizer, eos) for job in jobs_at[step]]
                left = batch.admit(seqs)
            else:
                left = []
            left += batch.step()
            for seq in left:
                done[id(seq.job)] = seq.tokens
            if batch.cache is not None:  # no column is padding in every row: a row that left took its width
                assert bool(batch.cache.mask[:, 0].any())
            step += 1
            assert step < 200
    return done


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_joining_and_leaving_sequences_decode_as_generate_alone(model, tokenizer, schedule):
    batch = DecodeBatch(model, tokenizer.pad_token_id, repetition_penalty=_penalty(model))
    batch.probe()
    assert batch.reshapable
    plan = SCHEDULES[schedule]
    ids = [tokenizer(text)["input_ids"] for text, _, _ in plan]
    jobs = [Job(ids[i], Sampling(max_new_tokens=n)) for i, (_, n, _) in enumerate(plan)]
    jobs_at: dict[int, list[Job]] = {}
    for job, (_, _, step) in zip(jobs, plan, strict=True):
        jobs_at.setdefault(step, []).append(job)
    done = _run(batch, tokenizer, jobs_at)
    for i, job in enumerate(jobs):
        assert done[id(job)] == _alone(model, tokenizer, ids[i], plan[i][1]), plan[i][0]
    assert batch.stats.largest_batch == 3
    assert batch.seqs == [] and batch.cache is None


def test_a_seeded_sample_does_not_depend_on_its_neighbours(tokenizer, tiny_model):
    model = _chaotic(tiny_model)
    ids = [tokenizer(text)["input_ids"] for text, _, _ in SCHEDULES["joins"]]

    def seeded() -> Job:
        return Job(ids[2], Sampling(temperature=0.8, top_p=0.9, max_new_tokens=15, seed=42))

    alone, busy = seeded(), seeded()
    first = _run(DecodeBatch(model, tokenizer.pad_token_id), tokenizer, {0: [alone]})
    others = [Job(ids[i], Sampling(temperature=1.0, max_new_tokens=10)) for i in (0, 1, 3)]
    second = _run(
        DecodeBatch(model, tokenizer.pad_token_id), tokenizer, {0: others[:2], 2: [busy, others[2]]}
    )
    assert first[id(alone)] == second[id(busy)]
    assert len(set(first[id(alone)])) > 3  # it did sample, not repeat one token


def _penalty(model) -> float | None:
    value = model.generation_config.repetition_penalty
    return None if value in (None, 1.0) else value
