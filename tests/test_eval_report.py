"""The evaluation report from hand-made report dicts: per-task confusion matrices, n/a, navigation, final/."""

from __future__ import annotations

import json

import pytest

from sftlab.evaluate.report import add_sections, write_html
from sftlab.evaluate.samples import EvalSample
from sftlab.evaluate.tasks import task_scores
from sftlab.report.html import HtmlReport

LABELS = ["billing", "bug", "negative", "positive"]
TICKET = '{"category": "billing", "urgent": false}'


def _mixed_samples() -> tuple[list[EvalSample], list[str]]:
    """Ticket categories, review labels and JSON extraction in one eval set, with the answers produced."""
    rows = [
        ("ticket", "billing", "billing"),
        ("ticket", "bug", "billing"),
        ("ticket", "bug", "bug"),
        ("review", "positive", "positive"),
        ("review", "negative", "billing"),  # another task's label: <other> in the review matrix
        ("json", TICKET, TICKET),
        ("json", TICKET, "not json"),
    ]
    samples = [
        EvalSample(id=f"s{i}", messages=[{"role": "user", "content": "q"}], expected=e, task=t,
                   label="billing" if t == "json" else None)  # the JSON answers' category is their label
        for i, (t, e, _) in enumerate(rows)
    ]  # fmt: skip
    return samples, [p for _, _, p in rows]


@pytest.fixture
def scores():
    samples, produced = _mixed_samples()
    names = ["accuracy", "macro_f1", "in_label_set", "json_valid", "json_field_match"]
    return task_scores(names, samples, produced, labels=LABELS, schema=None, custom=None)


def test_one_confusion_matrix_per_task_over_its_own_labels(scores):
    conf = scores["confusions"]
    assert list(conf) == ["json", "review", "ticket"]
    # JSON answers labelled by their category: placed by the produced JSON's category ("not json": <other>)
    assert conf["json"]["rows"] == ["billing"] and conf["json"]["matrix"] == [[1, 1]]
    assert conf["ticket"]["rows"] == ["billing", "bug"]
    assert conf["ticket"]["matrix"] == [[1, 0, 0], [1, 1, 0]]
    assert conf["review"]["rows"] == ["negative", "positive"]
    assert conf["review"]["columns"] == ["negative", "positive", "<other>"]
    assert conf["review"]["matrix"] == [[0, 0, 1], [0, 1, 0]]


def test_metrics_that_do_not_apply_are_none_not_zero(scores):
    per = scores["per_task"]
    assert per["json"]["macro_f1"] is None and per["json"]["in_label_set"] is None
    assert per["json"]["json_valid"] == 0.5 and per["json"]["json_field_match"] == 0.5
    assert per["review"]["json_valid"] is None and per["review"]["json_field_match"] is None
    assert per["review"]["in_label_set"] == 1.0  # "billing" is in the label set, though not a review label
    assert per["ticket"]["accuracy"] == pytest.approx(2 / 3)


def _report(scores, sweep=None) -> dict:
    model = {**scores, "reference": "x", "benchmarks": {}, "loss": {"mean": None, "worst": []}}
    return {
        "name": "t",
        "base": "base",
        "primary_metric": "accuracy",
        "eval_samples": 7,
        "models": {"base": model, "fine-tuned": json.loads(json.dumps(model))},
        "retention": {},
        "sweep": sweep,
        "bad_cases": {"base": 0, "fine-tuned": 0},
        "settings": {"icl_k": 0, "sweep_samples": 8},
    }


def test_html_shows_na_and_one_figure_of_per_task_matrices(scores, tmp_path):
    html = write_html(_report(scores), tmp_path / "report.html").read_text()
    assert "<td>n/a</td>" in html and "does not apply" in html
    assert "over that task&#x27;s labels" in html and html.count("data:image/png;base64,") == 1


def test_run_report_navigation_has_one_summary(scores):
    page = HtmlReport("run")
    page.section("Summary")  # the run report's own
    add_sections(page, _report(scores))
    nav = page.render().split("<nav>")[1].split("</nav>")[0]
    assert nav.count(">Summary<") == 1 and ">Evaluation summary<" in nav


def test_sweep_says_which_checkpoint_final_is_when_best_trade_off_differs(scores, tmp_path):
    rows = [{"step": s, "checkpoint": f"c{s}", "task": t, "benchmark": 0.4, "best": s == 80}
            for s, t in ((80, 0.9), (156, 0.8))]  # fmt: skip
    sweep = {"rows": rows, "best_step": 80, "base_benchmark": 0.4, "train_curve": [], "task_metric": "accuracy",
             "benchmark": "arc_easy", "final_step": 156, "final_reason": "best checkpoint checkpoint-156 by eval loss"}  # fmt: skip
    html = write_html(_report(scores, sweep), tmp_path / "r.html").read_text()
    assert (
        "final/ is checkpoint-156 (best checkpoint checkpoint-156 by eval loss), not the best trade-off"
        in html
    )
    assert "checkpoints/checkpoint-80" in html


def test_matrix_numbers_are_white_on_dark_cells():
    from sftlab.evaluate.report import _matrix, plt

    fig, ax = plt().subplots()
    _matrix(ax, {"rows": ["a", "b"], "columns": ["a", "b", "<other>"], "matrix": [[9, 1, 0], [2, 7, 0]]}, "t")
    colours = {t.get_text(): t.get_color() for t in ax.texts}
    assert colours["9"] == colours["7"] == "white" and colours["1"] == colours["0"] == "black"
    plt().close(fig)
