"""Pure evaluation pieces with exact expected values: metrics, line fit, retention gate, sweep pick."""

from __future__ import annotations

import sys

import pytest
import sacrebleu

from sftlab.errors import RecipeError
from sftlab.evaluate import metrics as M
from sftlab.evaluate.latency import fit_line
from sftlab.evaluate.retention import retention_gate
from sftlab.evaluate.sweep import list_checkpoints, pick_best, read_train_metrics


def test_exact_match_and_accuracy_differ_on_normalisation():
    preds, refs = ["Positive.", "negative", " neutral "], ["positive", "negative", "neutral"]
    assert M.exact_match(preds, refs) == pytest.approx(2 / 3)
    assert M.accuracy(preds, refs) == 1.0


def test_confusion_matrix_and_macro_f1_exact():
    refs = ["a", "a", "a", "b", "b", "c"]
    preds = ["a", "a", "b", "b", "zzz", "c"]
    columns, matrix = M.confusion_matrix(preds, refs, ["a", "b", "c"])
    assert columns == ["a", "b", "c", M.OTHER]
    assert matrix == [[2, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]]
    # a: tp2 fp0 fn1 -> 0.8; b: tp1 fp1 fn1 -> 0.5; c: tp1 -> 1.0
    assert M.macro_f1(preds, refs, ["a", "b", "c"]) == pytest.approx((0.8 + 0.5 + 1.0) / 3)
    assert M.in_label_set(preds, ["a", "b", "c"]) == pytest.approx(5 / 6)


def test_bleu_and_chrf_equal_sacrebleu():
    preds = ["the cat sat on the mat", "hello there general kenobi"]
    refs = ["the cat is on the mat", "hello there general kenobi"]
    assert M.bleu(preds, refs) == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score)
    assert M.chrf(preds, refs) == pytest.approx(sacrebleu.corpus_chrf(preds, [refs]).score)
    assert 0 < M.bleu(preds, refs) < 100


def test_rouge_l_is_token_lcs_f1_with_rouge_score_tokens():
    # LCS("a b c d", "a c d e") = 3 -> F1 = 2*3/(4+4)
    assert M.rouge_l(["a b c d"], ["a c d e"]) == pytest.approx(0.75)
    # the pair: punctuation and case are not tokens (was 0.833 with whitespace tokens)
    assert M.rouge_l(["The cat sat on the mat."], ["the cat sat on the mat"]) == 1.0
    assert M.rouge_tokens("don't-stop, e-mail: 3.5%") == ["don", "t", "stop", "e", "mail", "3", "5"]
    assert M.rouge_l([""], [""]) == 0.0  # as rouge-score: no tokens on either side scores 0


def test_json_metrics():
    preds = ['{"name": "Ada", "age": 36}', '```json\n{"name": "Bob", "age": 1}\n```', "not json"]
    refs = ['{"name": "Ada", "age": 37}', '{"name": "Bob", "age": 1}', '{"name": "Cy"}']
    assert M.json_valid(preds) == pytest.approx(2 / 3)
    # fields: Ada 1/2, Bob 2/2, Cy 0/1 -> 3/5
    assert M.json_field_match(preds, refs) == pytest.approx(3 / 5)
    schema = {"type": "object", "required": ["name", "age"], "properties": {"age": {"type": "integer"}}}
    assert M.json_schema_match(preds, schema) == pytest.approx(2 / 3)
    assert M.schema_errors({"name": "x", "age": "3"}, schema) == ["$.age: expected integer, got str"]


def test_compute_metrics_with_custom_hook(tmp_path, monkeypatch):
    (tmp_path / "my_metrics.py").write_text(
        "def length_ratio(preds, refs):\n    return sum(len(p) for p in preds) / sum(len(r) for r in refs)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    custom = M.load_custom_metric("my_metrics:length_ratio")
    out = M.compute_metrics(
        ["exact_match", "macro_f1"], ["ab", "b"], ["ab", "ab"], labels=["ab", "b"], custom=custom
    )
    assert out == {"exact_match": 0.5, "macro_f1": pytest.approx((2 / 3 + 0) / 2), "custom": 0.75}
    sys.modules.pop("my_metrics", None)


def test_custom_metric_errors_name_the_key():
    with pytest.raises(RecipeError, match="evaluation.custom_metric"):
        M.load_custom_metric("no_colon_here")
    with pytest.raises(RecipeError, match="cannot import"):
        M.load_custom_metric("surely_not_a_module_xyz:f")
    with pytest.raises(RecipeError, match="json_schema"):
        M.compute_metrics(["json_schema"], ["{}"], ["{}"])


def test_fit_line_exact_and_noisy():
    f = fit_line([1, 2, 3, 4], [3.0, 5.0, 7.0, 9.0])
    assert (f.k, f.b, f.r2) == (pytest.approx(2.0), pytest.approx(1.0), pytest.approx(1.0))
    noisy = fit_line([1, 2, 3, 4], [3.0, 5.5, 6.5, 9.0])
    assert 0.9 < noisy.r2 < 1.0
    two = fit_line([4, 16], [0.2, 5.7])  # a line through two points always "fits": no R²
    assert two.k == pytest.approx(5.5 / 12) and two.r2 is None
    with pytest.raises(ValueError):
        fit_line([1, 1], [2, 3])


def _answers(n: int, right: int, lost: int, gained: int) -> tuple[list[bool], list[bool]]:
    """Base gets ``right`` of ``n`` questions; the tuned model loses ``lost`` of those and gains ``gained``."""
    base = [i < right for i in range(n)]
    tuned = [(i < right and i >= lost) or (right <= i < right + gained) for i in range(n)]
    return base, tuned


def test_retention_gate_is_a_paired_test_with_three_outcomes():
    # 570 questions, 10 answers moved each way: no drop, and the set could have seen a 3-point one
    ok = retention_gate(*_answers(570, 300, 10, 10), threshold=0.03)
    assert (ok.status, ok.passed, ok.drop) == ("pass", True, 0.0)
    assert ok.detectable_drop <= 0.03 and "detects drops of" in ok.message
    assert ok.base_ci95[0] < 300 / 570 < ok.base_ci95[1]
    # 40 lost, 5 gained: a 6-point drop, significant
    warn = retention_gate(*_answers(570, 300, 40, 5), threshold=0.03, action="warn")
    assert (warn.status, warn.passed, warn.losses, warn.gains) == ("warn", False, 40, 5)
    assert warn.p_value < 1e-6 and warn.drop_ci95[0] > 0.03
    fail = retention_gate(*_answers(570, 300, 40, 5), threshold=0.03, action="fail")
    assert fail.status == "fail" and "general" in fail.message
    # a significant drop within the allowed threshold passes
    assert retention_gate(*_answers(570, 300, 12, 0), threshold=0.03).status == "pass"
    # a clear gain passes even where a 3-point drop could not be detected: the whole interval is below it
    better = retention_gate(*_answers(570, 245, 26, 43), threshold=0.03)
    assert better.detectable_drop > 0.03 and better.drop_ci95[1] < 0.03
    assert better.status == "pass" and "with 95% confidence" in better.message
    # 50 questions cannot see a 3-point drop: the gate says so instead of "pass"
    small = retention_gate(*_answers(50, 25, 1, 1), threshold=0.03)
    assert (small.status, small.passed) == ("too small", False)
    assert "too small to tell" in small.message and small.detectable_drop > 0.03
    with pytest.raises(ValueError, match="same questions"):
        retention_gate([True], [True, False], threshold=0.02)


def test_pick_best_prefers_retention_then_task():
    rows = [
        {"task": 0.9, "benchmark": 0.20},
        {"task": 0.7, "benchmark": 0.31},
        {"task": 0.8, "benchmark": 0.29},
    ]
    assert pick_best(rows, 0.30, 0.02) == 2
    assert pick_best(rows, None, 0.02) == 0
    assert pick_best([{"task": 0.5, "benchmark": 0.1}, {"task": 0.6, "benchmark": 0.0}], 0.5, 0.0) == 0


def test_checkpoint_listing_and_metrics(tmp_path):
    for step in (20, 5, 100):
        (tmp_path / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
        (tmp_path / "checkpoints" / f"checkpoint-{step}" / "config.json").write_text("{}")
    (tmp_path / "checkpoints" / "checkpoint-7").mkdir()  # no model inside: not a checkpoint
    assert [s for s, _ in list_checkpoints(tmp_path)] == [5, 20, 100]
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "metrics.jsonl").write_text(
        '{"step": 5, "loss": 2.0}\n\n{"step": 5, "eval_loss": 1.5}\n'
    )
    assert read_train_metrics(tmp_path) == [{"step": 5, "loss": 2.0}, {"step": 5, "eval_loss": 1.5}]


def test_custom_metric_from_a_file(tmp_path):
    path = tmp_path / "scores.py"
    path.write_text(
        "def first_char(preds, refs):\n    return sum(p[:1] == r[:1] for p, r in zip(preds, refs)) / len(refs)\n"
    )
    custom = M.load_custom_metric(f"{path}:first_char")
    assert custom(["ab", "xb"], ["ac", "ac"]) == 0.5


def test_custom_metric_must_be_your_own_code(tmp_path, monkeypatch):
    from sftlab.recipe import load_recipe

    for spec in ("os:system", "subprocess:run", "builtins:eval", "sftlab.evaluate.metrics:exact_match"):
        with pytest.raises(RecipeError, match="standard-library function"):
            M.load_custom_metric(spec)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("evaluation: {custom_metric: 'os:system'}\n")
    with pytest.raises(RecipeError, match="evaluation.custom_metric.*standard-library"):
        load_recipe(recipe)  # refused by recipe check, before anything is imported
    (tmp_path / "sneaky.py").write_text("from os import system\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(RecipeError, match="is not defined in 'sneaky'"):
        M.load_custom_metric("sneaky:system")
    sys.modules.pop("sneaky", None)
