"""Selection on a real public chat corpus (ShareGPT V3, the first 500 conversations), as a new user runs it.

Read with the usual repairs, exact-deduplicated, scored with the heuristics and
selected to a budget of 50 with the default MiniLM embeddings: the default
selection must be more diverse than a random subset of the same size by the
report's own measure, code must keep its pool share (within 5 points) with
``stratify: domain``, and both shares must be in ``report.json`` and the HTML.
"""

from __future__ import annotations

import json

import pytest

from real_sharegpt import SHAREGPT, SKIP_REASON, write_sharegpt_jsonl
from sftlab.curate.embeddings import MemoEmbedder, load_embedder
from sftlab.curate.pipeline import curate
from sftlab.curate.report import curation_summary
from sftlab.curate.steps.registry import build_steps
from sftlab.data.io import RecordStream

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not SHAREGPT.is_file(), reason=SKIP_REASON)]
BUDGET = 50


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sharegpt")
    path = write_sharegpt_jsonl(500, folder / "sharegpt.jsonl")
    embedder = MemoEmbedder(load_embedder("minilm"))
    out = {}
    for name, extra in (("default", {}), ("stratified", {"stratify": "domain"})):
        records = RecordStream(
            path, format="sharegpt", on_error="skip", repairs=("drop_leading_assistant", "keep_valid_prefix")
        )
        steps = build_steps(
            [
                {"type": "exact_dedup"},
                {"type": "score", "signals": ["heuristic"]},
                {"type": "select", "budget": BUDGET, **extra},
            ]
        )
        steps[-1].embedder = embedder
        result = curate(records, steps, folder / name)
        report = json.loads((folder / name / "report.json").read_text(encoding="utf-8"))
        select = next(s for s in report["steps"] if s["step"] == "select")
        out[name] = (result, select, (folder / name / "report.html").read_text(encoding="utf-8"), steps[-1])
    return out


def test_default_selection_is_more_diverse_than_random_by_the_reports_measure(runs):
    result, select, _, _ = runs["default"]
    spread = select["details"]["embedding_spread"]
    assert select["out"] == BUDGET
    assert spread["more_diverse_than_random"] is True
    assert spread["selected"] > spread["random_same_size"]
    assert select["details"]["source_clusters"]["largest_in_selection"] == 1  # one segment per conversation
    assert result.kept == BUDGET and result.records_in == result.kept + result.rejected_total


def test_stratified_selection_keeps_the_code_share_within_5_points(runs):
    _, select, _, _ = runs["stratified"]
    code = select["details"]["domains"]["code"]
    assert code["pool_share"] > 15  # ShareGPT is about a third code: the test means something
    assert abs(code["selected_share"] - code["pool_share"]) <= 5
    assert select["details"]["embedding_spread"]["more_diverse_than_random"] is True


def test_both_shares_are_in_report_json_and_html_always(runs):
    for name in ("default", "stratified"):
        result, select, html, _ = runs[name]
        domains = select["details"]["domains"]
        assert {"code", "prose"} <= set(domains)
        for row in domains.values():
            assert {"pool_share", "selected_share", "points"} <= set(row)
        assert "Domains" in html and "pool_share" in html and "selected_share" in html
        assert "random subset, same size" in html
        summary = curation_summary(result.out_dir)  # the run report's compact view carries them too
        assert summary["selection"]["select"]["domains"]["code"] == select["details"]["domains"]["code"]
