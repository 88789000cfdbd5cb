"""Lines read = kept + rejected, with the lines rejected while reading counted as the ``read`` step.

A ShareGPT file like the public dumps: good conversations beside ones that start
with the assistant, use an unknown role, are not JSON, or have no assistant turn.
"""

from __future__ import annotations

import json

import yaml

from sftlab.cli.main import main


def _conv(*turns):
    return {"conversations": [{"from": who, "value": text} for who, text in turns]}


GOOD = [
    _conv(("human", f"Name a colour number {i}."), ("gpt", f"Colour {i} could be teal, a blue-green."))
    for i in range(6)
]
# cut from a longer session: the greeting's question was lost, the exchange after it is good (repaired, kept)
REPAIRABLE = _conv(("gpt", "Hello! How can I help?"), ("human", "Hi"), ("gpt", "Hi there."))
BAD = [
    (_conv(("gpt", "Hello! How can I help?"), ("gpt", "Anyone there?")), "assistant_first"),
    (_conv(("human", "What is 2+2?"), ("bing", "4")), "unknown_role"),
    (_conv(("human", "Only a question with no answer?")), "no_assistant_turn"),
]


def _write(tmp_path):
    lines = [json.dumps(r) for r in GOOD[:3]]
    lines += [json.dumps(r) for r, _ in BAD]
    lines.append(json.dumps(REPAIRABLE))
    lines.append('{"conversations": [ not json')
    lines += [json.dumps(r) for r in GOOD[3:]]
    data = tmp_path / "sharegpt.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    recipe = {
        "name": "acc",
        "output_dir": str(tmp_path / "run"),
        "data": {"sources": [{"path": str(data)}], "on_error": "skip"},
        "curation": {"steps": [{"type": "exact_dedup"}]},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path, len(lines)


def test_read_rejects_are_counted_everywhere(tmp_path, capsys):
    recipe, lines = _write(tmp_path)
    assert main(["data", "curate", str(recipe)]) == 0
    printed = capsys.readouterr().out
    assert f"in {lines} = kept 7 + rejected 4" in printed
    assert "assistant_first 1" in printed and "malformed_json 1" in printed
    assert "repaired drop_leading_assistant 1" in printed
    assert "read" in printed.split("\n", 1)[1]  # the per-step lines start with reading

    out = tmp_path / "run" / "curation"
    report = json.loads((out / "report.json").read_text())
    assert report["records_in"] == lines == report["kept"] + report["rejected"]
    assert report["accounting_ok"]
    read = report["steps"][0]
    assert read["step"] == "read" and read["in"] == lines and read["out"] == 7
    assert read["details"]["repaired"] == {"drop_leading_assistant": 1}
    assert read["rejected_by_reason"] == {
        "assistant_first": 1,
        "unknown_role": 1,
        "no_assistant_turn": 1,
        "malformed_json": 1,
    }

    rejects = [json.loads(x) for x in (out / "rejects.jsonl").read_text().splitlines()]
    read_rows = [r for r in rejects if r["step"] == "read"]
    assert sorted(r["reason"] for r in read_rows) == sorted([*(b for _, b in BAD), "malformed_json"])
    assert all(r["location"].startswith(str(tmp_path)) and "raw" in r for r in read_rows)
    assert not list(out.glob("*read_rejects*"))  # merged into rejects.jsonl, no stray files

    html = (out / "report.html").read_text()
    assert f"in {lines:,} + added 0 = kept 7 + rejected 4" in html
    assert "assistant_first" in html and "Sources" in html


def test_without_repairs_the_cut_conversation_is_rejected(tmp_path, capsys):
    recipe, lines = _write(tmp_path)
    assert main(["data", "curate", str(recipe), "data.repair=[]"]) == 0
    assert f"in {lines} = kept 6 + rejected 5" in capsys.readouterr().out


def test_curate_json_summary_counts_lines(tmp_path, capsys):
    recipe, lines = _write(tmp_path)
    assert main(["data", "curate", str(recipe), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["records_in"] == lines and summary["kept"] + summary["rejected"] == lines
    assert summary["steps"][0]["step"] == "read"


def test_run_stage_counts_lines(tmp_path, capsys):
    recipe, lines = _write(tmp_path)
    assert main(["run", str(recipe), "--until", "curate"]) == 0
    printed = capsys.readouterr().err  # progress and stage summaries go to stderr
    assert f"in {lines} = kept 7 + rejected 4" in printed
