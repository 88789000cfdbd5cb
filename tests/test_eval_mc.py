"""Multiple-choice scoring: the embedded MMLU file, subsets and shots, batched == one-at-a-time scores."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from sftlab.errors import DataError
from sftlab.evaluate.mmlu import embedded_mmlu_path, load_mmlu, shot_picker, stratified_subset
from sftlab.evaluate.multiple_choice import (
    MCQuestion,
    build_prompt,
    evaluate_questions,
    score_continuations,
    score_letters,
)


@pytest.fixture(scope="module")
def mmlu():
    return load_mmlu()


def test_embedded_mmlu_drops_the_two_header_rows(mmlu):
    lines = embedded_mmlu_path().read_text(encoding="utf-8").splitlines()
    assert len(lines) == 14_044
    assert len(mmlu) == 14_042
    assert len({q.subject for q in mmlu}) == 57
    assert not any(q.question == "question" for q in mmlu)
    assert all(len(q.options) == 4 and 0 <= q.answer < 4 for q in mmlu)


def test_stratified_subset_is_seeded_and_covers_subjects(mmlu):
    a = stratified_subset(mmlu, 200, seed=1)
    assert a == stratified_subset(mmlu, 200, seed=1)
    assert a != stratified_subset(mmlu, 200, seed=2)
    assert len(a) == len(set(a)) == 200
    counts = Counter(mmlu[i].subject for i in a)
    assert len(counts) == 57
    # the biggest subject (professional law, 1,534 of 14,042) gets about its share
    assert counts["professional law"] == pytest.approx(200 * 1534 / 14042, abs=2)
    assert stratified_subset(mmlu, 0, seed=1) == list(range(len(mmlu)))


def test_shots_come_from_the_same_subject_and_never_from_the_subset(mmlu):
    subset = stratified_subset(mmlu, 60, seed=3)
    shots_for = shot_picker(mmlu, subset, 2, seed=3)
    evaluated = {id(mmlu[i]) for i in subset}
    for i in subset[:10]:
        shots = shots_for(i, mmlu[i])
        assert len(shots) == 2
        assert all(s.subject == mmlu[i].subject and id(s) not in evaluated for s in shots)
    prompt = build_prompt(mmlu[subset[0]], shots_for(0, mmlu[subset[0]]))
    assert prompt.count("Answer:") == 3 and prompt.endswith("Answer:")


def test_load_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "mc.jsonl"
    bad.write_text('{"question": "q", "answer_a": "1", "correct_answer": "A"}\n')
    with pytest.raises(DataError, match=r"mc.jsonl:1: missing answer_b"):
        load_mmlu(bad)
    bad.write_text("{not json\n")
    with pytest.raises(DataError, match=r"mc.jsonl:1: invalid JSON"):
        load_mmlu(bad)


def _questions(mmlu, n=10):
    return [mmlu[i] for i in stratified_subset(mmlu, n, seed=0)]


def test_batched_letter_scores_equal_one_at_a_time(tiny_model, tokenizer, mmlu):
    prompts = [build_prompt(q) for q in _questions(mmlu)]
    batched = score_letters(tiny_model, tokenizer, prompts, batch_size=4)
    single = score_letters(tiny_model, tokenizer, prompts, batch_size=1)
    assert len(batched) == len(prompts) and all(len(s) == 4 for s in batched)
    for b, s in zip(batched, single, strict=True):
        assert b == pytest.approx(s, abs=1e-4)
    # the shared-prompt letter score is the option's own conditional log-prob (prompt + " A", scored alone)
    import torch

    ids = tokenizer(prompts[0] + " B").input_ids
    with torch.no_grad():
        logits = tiny_model(torch.tensor([ids])).logits[0, -2]
    assert batched[0][1] == pytest.approx(float(torch.log_softmax(logits, -1)[ids[-1]]), abs=1e-4)


def test_batched_option_text_scores_equal_one_at_a_time(tiny_model, tokenizer, mmlu):
    qs = _questions(mmlu, 4)
    prompts = [build_prompt(q) for q in qs]
    batched = score_continuations(tiny_model, tokenizer, prompts, [q.options for q in qs], batch_size=3)
    single = score_continuations(tiny_model, tokenizer, prompts, [q.options for q in qs], batch_size=1)
    for b, s in zip(batched, single, strict=True):
        assert b == pytest.approx(s, abs=1e-4)
    assert all(v < 0 for row in batched for v in row)
    # the shared-prompt cache gives what scoring prompt + option as one sequence gives
    import torch

    q = qs[1]
    context = tokenizer(prompts[1]).input_ids
    for oi, opt in enumerate(q.options):
        cont = tokenizer(" " + opt.strip(), add_special_tokens=False).input_ids
        ids = torch.tensor([context + cont])
        with torch.no_grad():
            logp = torch.log_softmax(tiny_model(ids).logits[0, :-1], -1)
        want = sum(float(logp[len(context) - 1 + j, t]) for j, t in enumerate(cont))
        assert batched[1][oi] == pytest.approx(want, abs=1e-4)


def test_evaluate_questions_grades_picks(tiny_model, tokenizer, tmp_path):
    rows = [
        {
            "question": f"Pick {i}",
            "answer_a": "x",
            "answer_b": "y",
            "answer_c": "z",
            "answer_d": "w",
            "correct_answer": "ABCD"[i % 4],
            "topic": "toy",
        }
        for i in range(6)
    ]
    path = tmp_path / "toy.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    qs = load_mmlu(path)
    res = evaluate_questions(tiny_model, tokenizer, qs, batch_size=3)
    assert res.n == 6 and len(res.predictions) == 6
    assert res.accuracy == sum(p == q.answer for p, q in zip(res.predictions, qs, strict=True)) / 6
    assert set(res.per_subject) == {"toy"}
    assert isinstance(qs[0], MCQuestion)


def test_k_shot_scores_with_a_shared_prefix_equal_one_at_a_time(tiny_model, tokenizer, mmlu):
    """Questions of one subject share their solved shots: the prefix runs once, the scores do not change."""
    by_subject: dict[str, list[int]] = {}
    for i, q in enumerate(mmlu):
        by_subject.setdefault(q.subject, []).append(i)
    chosen = [i for s in sorted(by_subject)[:2] for i in by_subject[s][:5]] + [by_subject["virology"][0]]
    shots_for = shot_picker(mmlu, chosen, k=3, seed=0)
    prompts = [build_prompt(mmlu[i], shots_for(i, mmlu[i])) for i in chosen]
    shared = score_letters(tiny_model, tokenizer, prompts, batch_size=3, share_prefix=True)
    single = score_letters(tiny_model, tokenizer, prompts, batch_size=1)
    for a, b in zip(shared, single, strict=True):
        assert a == pytest.approx(b, abs=1e-4)
    from sftlab.evaluate.multiple_choice import _encode, _prefix_groups

    groups = _prefix_groups([_encode(tokenizer, p, None) for p in prompts])
    assert sorted(len(m) for _, m in groups) == [5, 5]  # one group per subject; the lone question runs alone
