"""Cloze multiple choice (lm-eval's acc_norm) and the embedded sets it runs on by default."""

from __future__ import annotations

import pytest

from sftlab.errors import DataError
from sftlab.evaluate.benchmarks import recipe_benchmarks
from sftlab.evaluate.embedded_sets import FOLDERS, load_embedded
from sftlab.evaluate.multiple_choice import (
    MCQuestion,
    cloze_prompt,
    evaluate_questions,
    grade,
    per_character,
    score_continuations,
)
from sftlab.recipe.load import recipe_from_dict

SIZES = {
    "arc_easy": 570,
    "arc_challenge": 299,
    "openbookqa": 500,
    "sciq": 1000,
    "piqa": 1838,
    "hellaswag": 10042,
}


@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_embedded_sets_load_whole_and_well_formed(name):
    questions = load_embedded(name)
    assert len(questions) == SIZES[name]
    assert all(len(q.options) >= 2 and 0 <= q.answer < len(q.options) for q in questions)
    assert all(q.question.strip() and all(o.strip() for o in q.options) for q in questions)
    if name == "arc_easy":  # the first validation question, as the ARC file has it
        q = questions[0]
        assert q.question == "Which technology was developed most recently?"
        assert q.options[q.answer] == "cellular telephone"
    if name == "sciq":  # the stored right answer is shuffled in, not always last
        assert {q.answer for q in questions} == {0, 1, 2, 3}
    if name == "hellaswag":  # continued, not asked; WikiHow's [header] markers removed
        assert all(q.cloze and "[" not in q.cloze for q in questions[:500])


def test_unknown_embedded_set_is_one_line():
    with pytest.raises(DataError, match="unknown embedded set 'arc'; use one of arc_easy"):
        load_embedded("arc")


def test_cloze_prompt_and_per_character_grading():
    q = MCQuestion("Which gas do plants take in?", ["oxygen", "carbon dioxide"], 1)
    assert cloze_prompt(q) == "Question: Which gas do plants take in?\nAnswer:"
    assert cloze_prompt(MCQuestion("ctx", ["a"], 0, cloze="A man is sitting on a roof. He")).endswith(
        "roof. He"
    )
    # summed log-likelihood prefers the short option; per character, the longer one can win
    scores = [[-3.0, -5.6]]  # "oxygen": 6 characters, "carbon dioxide": 14
    assert grade([q], scores).predictions == [0]
    assert per_character([q], scores) == [[-0.5, pytest.approx(-0.4)]]
    assert grade([q], per_character([q], scores)).predictions == [1]


def test_cloze_scores_are_option_log_likelihoods_per_character(tiny_model, tokenizer):
    qs = load_embedded("arc_easy")[:6]
    res = evaluate_questions(tiny_model, tokenizer, qs, scoring="cloze", batch_size=4)
    raw = score_continuations(tiny_model, tokenizer, [cloze_prompt(q) for q in qs], [q.options for q in qs])
    want = grade(qs, per_character(qs, raw))
    assert res.predictions == want.predictions and res.correct == want.correct
    assert res.chance == pytest.approx(sum(1 / len(q.options) for q in qs) / len(qs))
    lo, hi = res.interval
    assert lo <= res.accuracy <= hi
    with pytest.raises(DataError, match="unknown multiple-choice scoring 'logprob'"):
        evaluate_questions(tiny_model, tokenizer, qs, scoring="logprob")


def test_recipe_gates_on_arc_easy_by_default_and_names_a_bad_set():
    recipe = recipe_from_dict({"name": "r", "evaluation": {"retention": {"questions": 40}}})
    benchmarks = recipe_benchmarks(recipe)
    assert [b.name for b in benchmarks] == ["arc_easy"] and benchmarks[0].scoring == "cloze"
    assert len(benchmarks[0].questions) == 40
    again = recipe_benchmarks(recipe)[0].questions
    assert [q.question for q in again] == [
        q.question for q in benchmarks[0].questions
    ]  # seeded: same questions
    from sftlab.errors import RecipeError

    with pytest.raises(RecipeError, match="retention.benchmark 'arc' is neither an embedded set"):
        recipe_from_dict({"name": "r", "evaluation": {"retention": {"benchmark": "arc"}}})
    all_shots = recipe_from_dict({"name": "r", "evaluation": {"retention": {"k_shot": 2}}})
    with pytest.raises(DataError, match="arc_easy: 2-shot needs solved examples outside the 570 scored"):
        recipe_benchmarks(all_shots)
    shots = recipe_benchmarks(
        recipe_from_dict({"name": "r", "evaluation": {"retention": {"k_shot": 2, "questions": 50}}})
    )[0]
    scored = {q.question for q in shots.questions}
    assert all(s.question not in scored for q in shots.questions for s in shots.shots_for(0, q))


@pytest.mark.slow
def test_embedded_model_is_well_above_chance_on_arc_easy_in_cloze_form():
    """The default retention set can fail: the 135M model is far from chance on it (measured 43.0% on all 570)."""
    from sftlab.models import load_model, load_tokenizer

    tokenizer = load_tokenizer("smollm2-135m-instruct")
    model = load_model("smollm2-135m-instruct", dtype="float32")
    # 95 questions spread over the file: at 43% the interval still clears chance
    qs = load_embedded("arc_easy")[::6]
    res = evaluate_questions(model, tokenizer, qs, scoring="cloze", batch_size=16)
    assert res.interval[0] > res.chance
