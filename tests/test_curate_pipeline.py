"""The whole curation on a labelled set with planted defects: precision/recall per defect, accounting,
output files, the report, and the ``sftlab data curate`` command."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import yaml

from curate_helpers import CURATION_STEPS, conv, planted_dataset
from sftlab.cli.main import main
from sftlab.curate.pipeline import curate
from sftlab.curate.report import curation_summary
from sftlab.curate.steps.base import Decision, RecordStep
from sftlab.curate.steps.registry import build_steps
from sftlab.data.record import record_from_dict


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    out = tmp_path_factory.mktemp("curated")
    records = planted_dataset()
    expected = {r.meta.id: r.meta.extra.get("expect") for r in records}
    steps = [*CURATION_STEPS, {"type": "split", "train": 0.8, "validation": 0.1, "test": 0.1}]
    result = curate(records, build_steps(steps), out)
    return out, result, expected


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _rejects(out):
    return _rows(out / "rejects.jsonl")


def test_every_planted_defect_is_found_with_high_precision_and_recall(curated):
    out, _, expected = curated
    got = {row["record"]["meta"]["id"]: row["reason"] for row in _rejects(out)}
    kinds = Counter(v for v in expected.values() if v)
    assert set(kinds) == {
        "exact_duplicate",
        "near_duplicate",
        "conflict_minority",
        "boilerplate",
        "unfilled_placeholder",
        "contaminated",
    }
    for kind in kinds:
        truth = {i for i, e in expected.items() if e == kind}
        found = {i for i, g in got.items() if g == kind}
        tp = len(truth & found)
        precision, recall = tp / max(len(found), 1), tp / len(truth)
        assert precision >= 0.95 and recall >= 0.95, (kind, precision, recall, sorted(truth ^ found)[:5])
    clean_removed = [i for i in got if expected[i] is None]
    assert len(clean_removed) <= 0.01 * sum(1 for e in expected.values() if e is None)


def test_accounting_and_files(curated):
    out, result, expected = curated
    kept = _rows(out / "kept.jsonl")
    rejects = _rejects(out)
    assert result.records_in == len(expected) == len(kept) + len(rejects)
    ids = [r["meta"]["id"] for r in kept] + [r["record"]["meta"]["id"] for r in rejects]
    assert sorted(ids) == sorted(expected)  # nothing lost, nothing doubled
    assert all({"step", "reason", "detail", "record"} <= set(r) for r in rejects)
    record_from_dict(kept[0])  # canonical form
    splits = {n: _rows(out / f"{n}.jsonl") for n in ("train", "validation", "test")}
    assert sum(len(v) for v in splits.values()) == len(kept)
    assert all(r["meta"]["extra"]["split"] == n for n, rows in splits.items() for r in rows)
    report = json.loads((out / "report.json").read_text())
    assert report["accounting_ok"] and report["kept"] == len(kept)
    for s in report["steps"]:
        assert s["in"] + s["added"] == s["out"] + s["rejected"]
    assert report["steps"][0]["edited"] > 0  # normalize collapsed the planted whitespace


def test_report_html_has_plots_examples_clusters_and_conflicts(curated):
    out, _, _ = curated
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count('<img src="data:image/png;base64,') >= 2  # length histogram and task distribution
    for text in (
        "Duplicate clusters",
        "Conflict groups",
        "Decontamination",
        "unfilled_placeholder",
        "distinct",
    ):
        assert text in html
    assert "http://" not in html and "https://" not in html  # self-contained
    summary = curation_summary(out)
    assert summary["accounting_ok"] and summary["rejected_by_reason"]["contaminated"] == 20
    assert summary["splits"]["train"] > summary["splits"]["test"] > 0
    report = json.loads((out / "report.json").read_text())
    assert report["lengths"]["before"]["count"] == report["records_in"]
    assert 0 < report["diversity"]["distinct_2"] <= 1
    assert report["tasks"]["math"] == 20  # one of three per conflict group survives


def test_augmentation_accounting(tmp_path):
    recs = [conv(f"Explain topic {i} in one line.", f"Topic {i} is simple.", f"r{i}", "t") for i in range(30)]
    steps = build_steps([{"type": "augment", "fraction": 1.0}, {"type": "exact_dedup"}])
    result = curate(recs, steps, tmp_path, report=False)
    assert result.added > 20
    assert result.records_in + result.added == result.kept + result.rejected_total


def test_a_step_that_loses_records_is_caught(tmp_path):
    class Leaky(RecordStep):
        name = "leaky"

        def apply(self, records):
            for i, r in enumerate(records):
                if i % 2 == 0:
                    yield Decision(r)

    recs = [conv(f"q{i}", "a", f"r{i}", "t") for i in range(4)]
    with pytest.raises(RuntimeError, match="lost records"):
        curate(recs, [Leaky()], tmp_path, report=False)
    assert not (tmp_path / "kept.jsonl").exists()  # nothing half-written is published


# ── CLI ────────────────────────────────────────────────────────────────


def _write_recipe(tmp_path, steps, sources=None):
    data = tmp_path / "data.jsonl"
    rows = [
        {
            "instruction": "Give three tips for staying healthy.",
            "input": "",
            "output": "Eat well, sleep and move.",
        },
        {
            "instruction": "give three tips for staying  healthy.",
            "input": "",
            "output": "Eat well, sleep and move.",
        },
        {"instruction": "Write a letter to a client.", "input": "", "output": "Dear [NAME], thanks."},
        {
            "instruction": "作为一个AI语言模型你怎么看？",
            "input": "",
            "output": "作为一个AI语言模型，我没有观点。",
        },
    ]
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    recipe = {
        "name": "t",
        "output_dir": str(tmp_path / "run"),
        "data": {"sources": sources if sources is not None else [{"path": str(data)}]},
        "curation": {"steps": steps},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    return path


def test_cli_curate_writes_outputs(tmp_path, capsys):
    recipe = _write_recipe(
        tmp_path,
        [{"type": "normalize"}, {"type": "boilerplate"}, {"type": "placeholder"}, {"type": "exact_dedup"}],
    )
    assert main(["data", "curate", str(recipe)]) == 0
    printed = capsys.readouterr().out
    assert "in 4 = kept 1 + rejected 3" in printed
    out = tmp_path / "run" / "curation"
    assert (out / "report.html").is_file() and (out / "kept.jsonl").is_file()
    assert main(["data", "curate", str(recipe), "--json", "--out", str(tmp_path / "o2")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rejected_by_reason"] == {
        "boilerplate": 1,
        "unfilled_placeholder": 1,
        "exact_duplicate": 1,
    }


def test_cli_curate_exit_codes(tmp_path, capsys):
    bad_step = _write_recipe(tmp_path, [{"type": "minhash_dedup", "treshold": 0.5}])
    assert main(["data", "curate", str(bad_step)]) == 2
    err = capsys.readouterr().err
    assert "treshold" in err and "threshold" in err  # names the key and the fix
    unknown = _write_recipe(tmp_path, [{"type": "dedupe"}])
    assert main(["data", "curate", str(unknown)]) == 2
    no_sources = _write_recipe(tmp_path, [], sources=[])
    assert main(["data", "curate", str(no_sources)]) == 1
    assert "data.sources is empty" in capsys.readouterr().err
    missing = _write_recipe(tmp_path, [], sources=[{"path": str(tmp_path / "nope.jsonl")}])
    assert main(["data", "curate", str(missing)]) == 1
