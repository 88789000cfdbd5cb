"""Sharded inputs and outputs, and crash-and-resume of curation over sharded input.

A folder or glob of JSONL / Parquet shards reads exactly as the shards joined
into one file (same ids, same records), each rejected row located in its own
shard; kept records written as shards plus an index are read back by the
stages that train; a curation SIGKILLed after k shards resumes from their
checkpoints and publishes the same files as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate_helpers import VOCAB
from sftlab.curate.pipeline import curate
from sftlab.curate.resume import CRASH_ENV, work_dir
from sftlab.curate.shards import iter_kept
from sftlab.curate.steps.registry import build_steps
from sftlab.data.io import read_source
from sftlab.data.sources import read_sources
from sftlab.errors import DataError
from sftlab.pipeline.data import curated_records
from sftlab.recipe.sections.data import DataSection, SourceSection
from sftlab.ui.data import load_items

N_SHARDS = 6


def _rows(n: int = 240, seed: int = 0) -> list[str]:
    """Alpaca lines with planted problems: broken JSON, missing answers, a repeated explicit id, duplicates."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        q = " ".join(rng.choice(VOCAB[:15]) for _ in range(6))
        a = " ".join(rng.choice(VOCAB[:15]) for _ in range(rng.choice([2, 9, 30])))
        row = {"instruction": f"{q}?", "output": a}
        if i % 40 == 7:
            row["id"] = "fixed"  # an explicit id: its second appearance, in a later shard, is a duplicate
        lines.append(json.dumps(row))
        if i % 29 == 3:
            lines.append("{broken")
        if i % 31 == 5:
            lines.append(json.dumps({"instruction": "no answer"}))
        if i % 17 == 0:
            lines.append(json.dumps({"instruction": f"{q}?", "output": a}))  # exact duplicate
    return lines


def _write_shards(folder: Path, lines: list[str]) -> Path:
    folder.mkdir(parents=True)
    step = -(-len(lines) // N_SHARDS)
    for k in range(N_SHARDS):
        part = lines[k * step : (k + 1) * step]
        (folder / f"train-{k:05d}.jsonl").write_text("".join(line + "\n" for line in part))
    (folder / "train-00002.jsonl").write_text(
        (folder / "train-00002.jsonl").read_text() + "\n"
    )  # a blank line
    return folder


def _joined(folder: Path, target: Path) -> Path:
    target.write_bytes(b"".join(p.read_bytes() for p in sorted(folder.glob("train-*"))))
    return target


def _read(path: str, staging: Path) -> tuple[list[dict], list[dict]]:
    sources = read_sources(DataSection(sources=[{"path": path}], on_error="skip"), staging)
    return [r.to_dict() for r in sources], list(sources.reject_rows())


def test_folder_and_glob_of_jsonl_read_as_the_joined_file(tmp_path):
    folder = _write_shards(tmp_path / "train", _rows())
    joined = _joined(folder, tmp_path / "train.jsonl")
    one, one_rejects = _read(str(joined), tmp_path / "a")
    for path in (str(folder), str(tmp_path / "train" / "train-*.jsonl")):
        records, rejects = _read(path, tmp_path / "b")
        assert records == one
        assert [(r["reason"], r["raw"]) for r in rejects] == [(r["reason"], r["raw"]) for r in one_rejects]
        assert {r["reason"] for r in rejects} == {"malformed_json", "missing_field", "duplicate_id"}
        # each rejected row is located in its own shard, at its line there
        for row in rejects:
            file, line = row["location"].rsplit(":", 1)
            assert Path(file).parent == folder
            assert Path(file).read_text().splitlines()[int(line) - 1] == row["raw"]


def test_convert_and_inspect_take_a_folder_of_shards(tmp_path, capsys):
    from sftlab.cli.main import main

    folder = _write_shards(tmp_path / "train", _rows(80))
    joined = _joined(folder, tmp_path / "train.jsonl")
    for src, dst in ((folder, tmp_path / "a.jsonl"), (joined, tmp_path / "b.jsonl")):
        assert main(["data", "convert", str(src), str(dst), "--to", "sharegpt", "--on-error", "skip"]) == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    rejects = [json.loads(line) for line in (tmp_path / "a.jsonl.rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == len((tmp_path / "b.jsonl.rejects.jsonl").read_text().splitlines()) > 3
    assert all(Path(r["location"].rsplit(":", 1)[0]).parent == folder for r in rejects)
    assert not list(tmp_path.glob("a.jsonl.rejects-*"))  # the per-shard parts were joined into one file
    capsys.readouterr()
    assert main(["data", "inspect", str(folder)]) == 0
    assert "format alpaca" in capsys.readouterr().out


def test_a_glob_source_is_named_as_its_records_are():
    # training weights and general sources are keyed by the source name
    assert SourceSection(path="data/chat-*.parquet").name == "chat"
    assert SourceSection(path="s3://bucket/sft/*.jsonl").name == "sft"
    assert SourceSection(path="data/chat-*.parquet", name="mine").name == "mine"


def test_folder_of_parquet_reads_as_one_parquet_file(tmp_path):
    rng = random.Random(1)
    rows = [
        {"instruction": " ".join(rng.choice(VOCAB) for _ in range(5)), "output": f"answer {i}"}
        for i in range(50)
    ]
    (tmp_path / "chat").mkdir()
    for k in range(4):
        pq.write_table(pa.Table.from_pylist(rows[k * 13 : (k + 1) * 13]), tmp_path / "chat" / f"{k}.parquet")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "chat.parquet")
    one = [r.to_dict() for r in read_source(SourceSection(path=str(tmp_path / "chat.parquet")))]
    sharded = [r.to_dict() for r in read_source(SourceSection(path=str(tmp_path / "chat")))]
    assert len(one) == 50 and sharded == one
    glob = [r.to_dict() for r in read_source(SourceSection(path=str(tmp_path / "chat" / "*.parquet")))]
    assert [r["turns"] for r in glob] == [r["turns"] for r in one]


def test_fsspec_urls_are_listed_and_read_as_shards(tmp_path):
    import fsspec

    folder = _write_shards(tmp_path / "train", _rows(60))
    fs = fsspec.filesystem("memory")
    for path in sorted(folder.iterdir()):
        fs.pipe(f"/sftlab-test/train/{path.name}", path.read_bytes())
    fs.pipe("/sftlab-test/train/_SUCCESS", b"")  # a marker a writer left: not a shard
    try:
        remote = [
            [r.to_dict() for r in read_source(SourceSection(path=url), on_error="skip")]
            for url in ("memory://sftlab-test/train/*.jsonl", "memory://sftlab-test/train")
        ]
    finally:
        fs.rm("/sftlab-test", recursive=True)
    local = [r.to_dict() for r in read_source(SourceSection(path=str(folder)), on_error="skip")]
    assert remote == [local, local] and len(local) > 50


def test_limit_counts_over_all_shards_and_bad_shard_folders_are_one_line(tmp_path):
    folder = _write_shards(tmp_path / "train", _rows())
    limited = list(read_source(SourceSection(path=str(folder), limit=100), on_error="skip"))
    joined = _joined(folder, tmp_path / "train.jsonl")
    assert [r.to_dict() for r in limited] == [
        r.to_dict() for r in read_source(SourceSection(path=str(joined), limit=100), on_error="skip")
    ]
    with pytest.raises(DataError, match="no shards found"):
        list(read_source(SourceSection(path=str(tmp_path / "nothing-*.jsonl"))))
    (folder / "notes.csv").write_text("a,b\n")
    with pytest.raises(DataError, match=r"notes\.csv: a shard of .* that is not \.jsonl"):
        read_source(SourceSection(path=str(folder)))


STEPS = [
    {"type": "normalize"},
    {"type": "length", "min": 4},
    {"type": "exact_dedup"},
    {"type": "length", "min": 5},
]


def _curate(sources_path: Path, out: Path, **kwargs):
    data = DataSection(sources=[{"path": str(sources_path)}], on_error="skip")
    return curate(read_sources(data, out.parent), build_steps(STEPS), out, **kwargs)


def test_sharded_output_has_an_index_that_training_reads(tmp_path):
    folder = _write_shards(tmp_path / "train", _rows())
    plain = _curate(folder, tmp_path / "plain")
    sharded = _curate(folder, tmp_path / "sharded", shard_records=40)
    index = json.loads((tmp_path / "sharded" / "kept" / "index.json").read_text())
    assert index["records"] == sharded.kept == plain.kept
    assert [s["records"] for s in index["shards"]][:-1] == [40] * (len(index["shards"]) - 1)
    joined = b"".join((tmp_path / "sharded" / "kept" / s["name"]).read_bytes() for s in index["shards"])
    assert joined == (tmp_path / "plain" / "kept.jsonl").read_bytes()
    report = json.loads((tmp_path / "sharded" / "report.json").read_text())
    assert report["files"]["kept"].endswith("kept/index.json")
    train, validation = curated_records(tmp_path / "sharded")  # what `sftlab run` and `train` read
    assert [r.to_dict() for r in train] == [r.to_dict() for r in curated_records(tmp_path / "plain")[0]]
    assert validation == []
    # the workbench lists the kept records of every shard
    (tmp_path / "run").mkdir()
    (tmp_path / "sharded").rename(tmp_path / "run" / "curation")
    items = load_items(tmp_path / "run")
    assert sum(i.status == "kept" for i in items) == plain.kept
    # a shard changed after publishing is refused, naming it
    last = tmp_path / "run" / "curation" / "kept" / index["shards"][-1]["name"]
    last.write_text(last.read_text().splitlines(keepends=True)[0])
    with pytest.raises(DataError, match=rf"{last.name}: does not match index.json"):
        list(iter_kept(tmp_path / "run" / "curation"))


def _cli(recipe: Path, out: Path, crash_after: int | None = None) -> int:
    env = {**os.environ, "SFTLAB_PROGRESS": "0"}
    env.pop(CRASH_ENV, None)
    if crash_after:
        env[CRASH_ENV] = str(crash_after)
    cmd = [sys.executable, "-m", "sftlab.cli.main", "data", "curate", str(recipe), "--out", str(out)]
    return subprocess.run(cmd, env=env, capture_output=True, timeout=300).returncode


def _report(out: Path) -> dict:
    """report.json without what differs between any two runs (timings) or says how the run went (reuse)."""
    report = json.loads((out / "report.json").read_text())
    for step in report["steps"]:
        step.pop("seconds")
        for shards in step["details"].get("shards", []):
            shards.pop("reused")
    report.pop("files")
    return report


def test_crash_after_k_shards_resumes_to_the_same_outputs(tmp_path):
    rows = _rows(400)
    folder = _write_shards(tmp_path / "train", rows)
    # a leading record step with state of its own (index sizes set once, matches counted per record)
    answers = [json.loads(r)["output"] for r in rows if r.startswith("{") and len(r) > 200][::9]
    evals = "".join(
        json.dumps({"instruction": " ".join(a.split()[:12]), "output": "x"}) + "\n" for a in answers
    )
    (tmp_path / "eval.jsonl").write_text(evals)
    decon = {
        "type": "decontaminate",
        "eval_files": [str(tmp_path / "eval.jsonl")],
        "mmlu": False,
        "benchmarks": [],
    }
    # and one whose apply sets its details before the first record (review: decisions, unmatched)
    decisions = [
        {"id": "train-2", "decision": "drop"},
        {"id": "train-400", "decision": "keep"},
        {"id": "gone", "decision": "drop"},
    ]
    (tmp_path / "review.jsonl").write_text("".join(json.dumps(d) + "\n" for d in decisions))
    review = {"type": "review", "path": str(tmp_path / "review.jsonl")}
    recipe = tmp_path / "r.yaml"
    steps = json.dumps([review, *STEPS[:2], decon, *STEPS[2:], {"type": "minhash_dedup"}])
    recipe.write_text(
        f"name: s\noutput_dir: {tmp_path}\ndata: {{sources: [{{path: {folder}}}], on_error: skip}}\ncuration: {{steps: {steps}}}\n"
    )
    assert _cli(recipe, tmp_path / "whole") == 0  # uninterrupted

    out = tmp_path / "resumed"
    assert _cli(recipe, out, crash_after=2) == -9  # SIGKILL right after two shards completed
    work = work_dir(out)
    assert sorted(p.name for p in work.glob("*.done")) == ["0-00000.done", "0-00001.done"]
    assert not out.exists()
    # a third shard half-written when the process died: a folder without its marker is never read as done
    (work / "0-00002").mkdir()
    (work / "0-00002" / "kept.jsonl").write_text('{"half": "written"}\n')
    assert _cli(recipe, out) == 0
    assert not work.exists()  # removed after a successful publish

    whole = tmp_path / "whole"
    assert (out / "kept.jsonl").read_bytes() == (whole / "kept.jsonl").read_bytes()
    assert sorted((out / "rejects.jsonl").read_text().splitlines()) == sorted(
        (whole / "rejects.jsonl").read_text().splitlines()
    )
    assert (out / "rejects.jsonl").read_bytes() == (whole / "rejects.jsonl").read_bytes()
    assert _report(out) == _report(whole)
    report = json.loads((out / "report.json").read_text())
    assert report["records_in"] == report["kept"] + report["rejected"] == len(_rows(400))
    assert report["steps"][0]["details"]["shards"] == [
        {"source": "train", "path": str(folder), "shards": N_SHARDS, "checkpoints": "on", "reused": 2}
    ]
    review_details = next(s["details"] for s in report["steps"] if s["step"] == "review")
    assert review_details["unmatched"] == 1 and review_details["applied"] == {"keep": 1, "drop": 1, "edit": 0}
    assert f"train: {N_SHARDS} shards, checkpoints on, 2 reused from an interrupted run" in (
        out / "report.html"
    ).read_text(encoding="utf-8")


def test_changed_shard_or_step_settings_are_processed_again(tmp_path):
    folder = _write_shards(tmp_path / "train", _rows())
    out = tmp_path / "out"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: s\noutput_dir: {tmp_path}\ndata: {{sources: [{{path: {folder}}}], on_error: skip}}\n"
        f"curation: {{steps: {json.dumps(STEPS)}}}\n"
    )
    assert _cli(recipe, out, crash_after=N_SHARDS) == -9  # every shard checkpointed, nothing published
    # shard 4 edited: it and the shards after it (whose ids follow from it) are processed again
    (folder / "train-00004.jsonl").write_text((folder / "train-00004.jsonl").read_text() + "\n\n")
    data = DataSection(sources=[{"path": str(folder)}], on_error="skip")
    result = curate(read_sources(data, tmp_path), build_steps(STEPS), out)
    assert result.steps[0].details["shards"][0]["reused"] == 4
    fresh = _curate(folder, tmp_path / "fresh")
    assert (out / "kept.jsonl").read_bytes() == (tmp_path / "fresh" / "kept.jsonl").read_bytes()
    assert fresh.kept == result.kept
    # other step settings: nothing reused
    assert _cli(recipe, out, crash_after=N_SHARDS) == -9
    other = [{**s, "min": 3} if s["type"] == "length" else s for s in STEPS]
    result = curate(read_sources(data, tmp_path), build_steps(other), out)
    assert result.steps[0].details["shards"][0]["reused"] == 0


def test_ray_executor_reads_shards_without_checkpoints_and_says_so(tmp_path):
    pytest.importorskip("ray")
    folder = _write_shards(tmp_path / "train", _rows())
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: s\noutput_dir: {tmp_path}\ndata: {{sources: [{{path: {folder}}}], on_error: skip}}\n"
        f"curation: {{steps: {json.dumps(STEPS)}, executor: ray, ray: {{num_cpus: 2}}, output: {{shard_records: 50}}}}\n"
    )
    assert _cli(recipe, tmp_path / "ray", crash_after=1) == 0  # no checkpoints, so the crash hook never fires
    assert not work_dir(tmp_path / "ray").exists()
    report = json.loads((tmp_path / "ray" / "report.json").read_text())
    assert report["steps"][0]["details"]["shards"][0]["checkpoints"] == "off (executor ray runs without them)"
    _curate(folder, tmp_path / "local")
    kept = sorted((tmp_path / "ray" / "kept").glob("part-*.jsonl"))
    assert b"".join(p.read_bytes() for p in kept) == (tmp_path / "local" / "kept.jsonl").read_bytes()


def test_sftlab_run_trains_on_sharded_kept_records(tmp_path, tiny_model_dir):
    from sftlab.cli.main import main

    rows = [
        {"instruction": f"Is {n} even? Answer yes or no.", "output": "yes" if n % 2 == 0 else "no"}
        for n in range(30)
    ]
    folder = tmp_path / "train"
    folder.mkdir()
    for k in range(3):
        (folder / f"train-{k}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows[k * 10 : (k + 1) * 10])
        )
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"name: tiny\noutput_dir: {tmp_path / 'run'}\nmodel: {{name: {tiny_model_dir}}}\n"
        f"data: {{sources: [{{path: {folder}}}], eval_fraction: 0.2}}\n"
        "curation: {steps: [{type: exact_dedup}], output: {shard_records: 7}}\n"
        "render: {max_length: 64}\ntraining: {max_steps: 2, batch_size: 2, eval_steps: 2}\n"
    )
    assert main(["run", str(recipe), "--until", "train"]) == 0
    index = json.loads((tmp_path / "run" / "curation" / "kept" / "index.json").read_text())
    assert index["records"] == 30 and [s["records"] for s in index["shards"]] == [7, 7, 7, 7, 2]
    summary = json.loads((tmp_path / "run" / "train" / "summary.json").read_text())
    assert summary["render"]["records"] == 24  # 30 kept, 6 held out for evaluation: training read every shard
