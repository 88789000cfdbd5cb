"""The Ray executor on a real local Ray cluster decides exactly as the local one: same kept records in the
same order, same rejects with the same reasons and details, same per-step report, in = kept + rejected."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from curate_helpers import CURATION_STEPS, conv, planted_dataset
from sftlab.cli.main import main
from sftlab.curate.executors import build_executor
from sftlab.curate.executors.local import LocalExecutor
from sftlab.curate.pipeline import curate
from sftlab.curate.steps import decontaminate
from sftlab.curate.steps.base import Decision, RecordStep
from sftlab.curate.steps.registry import build_steps
from sftlab.errors import DataError, MissingDependencyError
from sftlab.recipe.sections.curation import CurationSection

ray = pytest.importorskip("ray")
from sftlab.curate.executors.ray_executor import RayExecutor  # noqa: E402

# Keys that say where a step ran (or how many records the shuffle looked at): the only allowed differences.
WHERE = ("ran_on", "candidates")


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """One real local Ray cluster (2 CPUs) for the module; the executor joins it and leaves it running."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield
    ray.shutdown()


def _both(records_fn, steps, tmp_path: Path, block_records: int = 64):
    outs = {}
    for name, executor in (("local", LocalExecutor()), ("ray", RayExecutor(block_records=block_records))):
        outs[name] = tmp_path / name
        curate(records_fn(), build_steps(steps), outs[name], executor=executor)
    return outs["local"], outs["ray"]


def _rejects(out: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (out / "rejects.jsonl").read_text(encoding="utf-8").splitlines()]
    return sorted(
        (r["record"]["meta"].get("id", ""), r["step"], r["reason"], r["detail"], json.dumps(r["record"]))
        for r in rows
    )


def _steps(report: dict) -> list[dict]:
    steps = []
    for s in report["steps"]:
        s = {k: v for k, v in s.items() if k != "seconds"}
        s["details"] = {k: v for k, v in s["details"].items() if k not in WHERE}
        steps.append(s)
    return steps


def _assert_same(local: Path, on_ray: Path) -> tuple[dict, dict]:
    assert _rejects(on_ray) == _rejects(local)
    # Kept records: the same, in the same order, byte for byte (flags, edits and all).
    assert (on_ray / "kept.jsonl").read_bytes() == (local / "kept.jsonl").read_bytes()
    a = json.loads((local / "report.json").read_text(encoding="utf-8"))
    b = json.loads((on_ray / "report.json").read_text(encoding="utf-8"))
    assert _steps(b) == _steps(a)
    for key in ("records_in", "added", "kept", "rejected", "rejected_by_reason", "splits"):
        assert b[key] == a[key], key
    assert b["accounting_ok"] and b["records_in"] + b["added"] == b["kept"] + b["rejected"]
    return a, b


def test_ray_decides_like_local_on_the_planted_set(tmp_path):
    steps = [*CURATION_STEPS, {"type": "split", "train": 0.8, "validation": 0.1, "test": 0.1}]
    local, on_ray = _both(planted_dataset, steps, tmp_path, block_records=97)
    a, b = _assert_same(local, on_ray)
    by_reason = b["rejected_by_reason"]
    # The set has every kind the brief asks for: exact and near duplicates and conflicts.
    assert by_reason["exact_duplicate"] >= 15 and by_reason["near_duplicate"] >= 15
    assert by_reason["conflict_minority"] >= 15 and by_reason["contaminated"] >= 15
    ran_on = {s["step"]: s["details"]["ran_on"] for s in b["steps"]}
    assert ran_on["normalize"] == ran_on["placeholder"] == "ray workers"
    assert ran_on["exact_dedup"] == ran_on["minhash_dedup"] == "ray shuffle"
    assert ran_on["conflicts"] == "ray shuffle" and ran_on["split"] == "driver"
    assert ran_on["decontaminate"] == "ray workers (index broadcast once)"
    assert {s["details"]["ran_on"] for s in a["steps"]} == {"local"}
    for name in ("train", "validation", "test"):
        assert (on_ray / f"{name}.jsonl").read_bytes() == (local / f"{name}.jsonl").read_bytes()
    assert "ray shuffle" in (on_ray / "report.html").read_text(encoding="utf-8")


EVAL_QUESTIONS = [
    "Which gas do green plants take in from the air to make their food in sunlight?",
    "A student pours forty millilitres of water into a graduated cylinder and then drops a small stone into it;"
    " the level rises to fifty two millilitres, so what is the volume of the stone in cubic centimetres?",
]


def _conflicts_and_leaks() -> list:
    """Conflicts with two, three and tied answer classes (labels too), prompts repeated with the same answer,
    records without id in the groups, and leaks of an eval file: a question copied whole and a passage of
    13 words of a longer one inside other text, besides the MMLU leaks of the planted set."""
    records = planted_dataset(seed=11, per_kind=6)
    q3, q_tie, q_same = "What is 6 times 7? Reply with the number only.", "Is the sky green?", "Name a prime."
    records += [
        conv(q3, a, rid, "math") for a, rid in (("42", "t1"), ("42.", None), ("43", "t3"), ("44", None))
    ]
    records += [conv(q_tie, "no", "tie1", "qa"), conv(q_tie, "yes", None, "qa")]
    records += [conv(q_same, "Seven.", f"same{i}", "qa") for i in range(3)]
    records += [
        conv("Review: loud fan", "negative", "lab1", "cls", label="negative"),
        conv("Review: loud fan", "negative", "lab2", "cls", label="positive"),
        conv("Review: loud fan", "negative", None, "cls", label="negative"),
    ]
    passage = " ".join(EVAL_QUESTIONS[1].split()[4:17])
    records += [
        conv(EVAL_QUESTIONS[0], "Carbon dioxide.", "leak_exact", "qa"),
        conv(f"Here is a puzzle. {passage} Think it over.", "Twelve.", None, "qa"),
    ]
    records.insert(5, records.pop())  # an unnamed leak early, among the first blocks
    near = "Please tell me what the capital city of the country of France is called"
    records.insert(50, conv(near, "Paris", "near_a", "qa"))  # the same prompt for match: minhash only
    records.append(conv(near + "?!", "Lyon", None, "qa"))
    return records


def test_decontamination_and_conflicts_on_the_workers(tmp_path, monkeypatch):
    """Exact and n-gram leaks of an eval file and conflicts of every kind decide as locally; the index is
    built once on the driver and put in the object store once, whatever the number of blocks."""
    evals = tmp_path / "eval.jsonl"
    evals.write_text("".join(json.dumps({"question": q}) + "\n" for q in EVAL_QUESTIONS), encoding="utf-8")
    steps = [
        {"type": "normalize"},
        {"type": "decontaminate", "eval_files": [str(evals)]},
        {"type": "conflicts", "policy": "keep_all_and_flag"},
        {"type": "conflicts"},
        {"type": "conflicts", "match": "minhash", "policy": "drop_all"},
        {"type": "length", "min": 1},
    ]
    local = tmp_path / "local"
    curate(_conflicts_and_leaks(), build_steps(steps), local, executor=LocalExecutor())
    builds, puts = [], []
    read = decontaminate.eval_texts_from_file
    monkeypatch.setattr(decontaminate, "eval_texts_from_file", lambda path: builds.append(path) or read(path))
    put = ray.put
    monkeypatch.setattr(ray, "put", lambda value, **kw: puts.append(type(value)) or put(value, **kw))
    on_ray = tmp_path / "ray"
    curate(_conflicts_and_leaks(), build_steps(steps), on_ray, executor=RayExecutor(block_records=40))
    a, b = _assert_same(local, on_ray)
    assert len(builds) == 1 and puts.count(list) == 1 and puts.count(pa.Table) > 10
    by_step = [s for s in b["steps"] if s["step"].split("#")[0] in ("decontaminate", "conflicts")]
    decon, flag, majority, drop = by_step
    assert decon["details"]["ran_on"] == "ray workers (index broadcast once)"
    assert decon["details"]["matches"]["eval.jsonl"] == 2 and decon["details"]["matches"]["mmlu"] >= 6
    assert decon["details"]["eval_sets"]["eval.jsonl"] == 2 and decon["details"]["ngrams"] > 100_000
    assert {s["details"]["ran_on"] for s in (flag, majority, drop)} == {"ray shuffle"}
    assert flag["flagged"] > 10 and flag["rejected"] == 0
    assert majority["rejected_by_reason"]["conflict_minority"] >= 8
    assert majority["rejected_by_reason"]["conflict_tie"] == 2  # the yes/no pair
    groups = majority["details"]["groups"]
    three = next(g for g in groups if g["prompt"].startswith("What is 6 times 7"))
    assert len(three["classes"]) == 3 and three["kept"][0] == "t1" and three["kept"][1].startswith("#")
    assert all(g["prompt"] != "Name a prime." for g in groups)  # one answer class: no conflict
    # Minhash prompt match: the near-identical prompts, which the exact steps before did not group.
    assert ("near_a", drop["step"], "conflict") in {r[:3] for r in _rejects(on_ray)}
    same = [
        json.loads(x)["meta"].get("id")
        for x in (on_ray / "kept.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert {"same0", "same1", "same2", "lab1"} <= set(same) and not {"leak_exact", "lab2"} & set(same)


def _unnamed():
    """Records without ids (positions name them, as ``#12``), duplicates spread over many blocks."""
    records = planted_dataset(seed=3, per_kind=8)
    for r in records[::3]:
        r.meta.id = None
    longer = [conv(r.instruction, r.response + " Indeed.", None, r.meta.task) for r in records[:40:4]]
    return records + longer + [conv("", "", None, "empty"), conv("", "", None, "empty")]


def test_keep_rules_flags_positions_and_added_records(tmp_path):
    steps = [
        {"type": "normalize"},
        {"type": "augment", "fraction": 0.3, "seed": 1},  # driver: records are added and renumbered
        {"type": "placeholder", "action": "flag"},
        {"type": "exact_dedup", "keep": "longest_answer", "field": "prompt"},
        {"type": "minhash_dedup", "threshold": 0.6, "action": "flag"},
        {"type": "exact_dedup", "field": "response"},
        {"type": "minhash_dedup", "threshold": 0.5, "keep": "longest_answer", "field": "all"},
        {"type": "length", "min": 1},
    ]
    local, on_ray = _both(_unnamed, steps, tmp_path, block_records=41)
    a, _ = _assert_same(local, on_ray)
    counts = {s["step"]: s for s in a["steps"]}
    assert counts["augment"]["added"] > 0 and counts["placeholder"]["flagged"] > 0
    assert counts["minhash_dedup"]["flagged"] > 0 and counts["exact_dedup"]["rejected"] > 0
    assert any(d[0] == "" and "#" in d[3] for d in _rejects(local))  # positions were compared


def test_empty_input_and_the_executor_from_the_recipe(tmp_path):
    section = CurationSection.model_validate(
        {"executor": "ray", "ray": {"block_records": 5, "partitions": 3}, "steps": []}
    )
    executor = build_executor(section)
    assert isinstance(executor, RayExecutor) and executor.block_records == 5 and executor.partitions == 3
    assert isinstance(build_executor(CurationSection()), LocalExecutor)
    result = curate(
        [], build_steps([{"type": "exact_dedup"}, {"type": "length"}]), tmp_path / "o", executor=executor
    )
    assert result.records_in == result.kept == result.rejected_total == 0


def test_cli_curate_on_ray(tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    rows = [r.to_dict() for r in planted_dataset(seed=5, per_kind=5)]
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    recipe = tmp_path / "recipe.yaml"
    steps = [
        {"type": "normalize"},
        {"type": "boilerplate"},
        {"type": "exact_dedup"},
        {"type": "minhash_dedup"},
    ]
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "t",
                "output_dir": str(tmp_path / "run"),
                "data": {"sources": [{"path": str(data)}]},
                "curation": {"steps": steps},
            }  # fmt: skip
        ),
        encoding="utf-8",
    )
    outs = {}
    for executor in ("local", "ray"):
        outs[executor] = tmp_path / executor
        args = ["data", "curate", str(recipe), f"curation.executor={executor}", "--out", str(outs[executor])]
        assert main([*args, "curation.ray.block_records=50"]) == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("in "))
        assert "exact_duplicate" in line and "near_duplicate" in line
    _assert_same(outs["local"], outs["ray"])


def test_model_scoring_on_an_actor_pool(tmp_path, tiny_model_dir):
    """``score`` with a real tiny model: the scores come from two actors (one model load each), the
    thresholds and the keep rule that reads the scores decide as on the local executor."""

    def records():
        sample = planted_dataset(seed=7, per_kind=2)[::9]
        copies = [conv(r.instruction.upper(), r.response, f"copy{i}", "t") for i, r in enumerate(sample[:4])]
        return sample + copies

    steps = [
        {"type": "normalize"},
        {"type": "score", "model": str(tiny_model_dir), "min_score": 0.75, "max_length": 128},
        {"type": "exact_dedup", "keep": "best_score", "score": "heuristic"},
        {"type": "length", "min": 1},
    ]
    outs = {}
    for name, executor in (
        ("local", LocalExecutor()),
        ("ray", RayExecutor(block_records=16, score_actors=2)),
    ):
        outs[name] = tmp_path / name
        curate(records(), build_steps(steps), outs[name], executor=executor)
    strip = lambda rows: [r[:4] for r in rows]  # noqa: E731
    assert strip(_rejects(outs["ray"])) == strip(_rejects(outs["local"]))
    kept = {}
    for name, out in outs.items():
        kept[name] = [json.loads(x) for x in (out / "kept.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["meta"]["id"] for r in kept["ray"]] == [r["meta"]["id"] for r in kept["local"]]
    for a, b in zip(kept["local"], kept["ray"], strict=True):
        # Model losses depend on how records are batched together, to float noise (1e-4 in test_curate_scoring).
        assert b["meta"]["extra"]["scores"] == pytest.approx(a["meta"]["extra"]["scores"], rel=1e-4)
    a = json.loads((outs["local"] / "report.json").read_text(encoding="utf-8"))
    b = json.loads((outs["ray"] / "report.json").read_text(encoding="utf-8"))
    counts = ("step", "in", "out", "rejected_by_reason", "flagged")
    assert [{k: s[k] for k in counts} for s in b["steps"]] == [{k: s[k] for k in counts} for s in a["steps"]]
    score = next(s for s in b["steps"] if s["step"] == "score")
    assert score["details"]["ran_on"] == "ray actors" and score["details"]["model"] == str(tiny_model_dir)
    assert score["rejected"] > 0 and b["rejected_by_reason"]["exact_duplicate"] > 0 and b["accounting_ok"]


class _Broken(RecordStep):
    """A step that finds a record it cannot handle, as a real one would raise for bad input."""

    name = "broken"

    def process(self, record):
        if record.meta.id == "dup3":
            raise DataError("data.jsonl line 7: broken record")
        return Decision(record)


def test_user_errors_on_workers_and_actors_are_one_line(tmp_path, capsys):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this file
    with pytest.raises(DataError) as err:
        curate(planted_dataset(per_kind=4), [_Broken()], tmp_path / "o", executor=RayExecutor())
    assert str(err.value) == "data.jsonl line 7: broken record"
    data = tmp_path / "data.jsonl"
    data.write_text(
        json.dumps({"instruction": "Say hi.", "output": "Hi there, friend."}) + "\n", encoding="utf-8"
    )
    recipe = tmp_path / "recipe.yaml"
    steps = [{"type": "score", "model": str(tmp_path / "no-such-model")}]
    body = {"name": "t", "data": {"sources": [{"path": str(data)}]}, "curation": {"steps": steps}}
    recipe.write_text(yaml.safe_dump(body), encoding="utf-8")
    assert main(["data", "curate", str(recipe), "curation.executor=ray", "--out", str(tmp_path / "o")]) == 1
    printed = capsys.readouterr().err
    assert (
        "no-such-model" in printed and "Traceback" not in printed and len(printed.strip().splitlines()) == 1
    )


def test_without_ray_the_executor_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as on an install without the 'ray' extra
    with pytest.raises(MissingDependencyError) as err:
        build_executor(CurationSection(executor="ray"))
    assert "pip install 'sftlab[ray]'" in str(err.value) and "\n" not in str(err.value)
