"""``sftlab run`` end to end on a tiny model: every stage, the report, skipping, --from / --until, safe resume."""

from __future__ import annotations

import json

import pytest
import torch

from eval_helpers import toy_questions, write_questions
from sftlab.cli.main import main
from sftlab.pipeline import state


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


ANIMALS = ["cat", "dog", "whale", "bat", "horse", "mouse", "shark", "trout", "eagle", "frog", "snake", "ant"]
MAMMALS = {"cat", "dog", "whale", "bat", "horse", "mouse"}


def _rows(animals, template="Is a {a} a mammal? Answer yes or no."):
    return [
        {
            "messages": [
                {"role": "user", "content": template.format(a=a)},
                {"role": "assistant", "content": "yes" if a in MAMMALS else "no"},
            ],
            "task": "mammal",
            "label": "yes" if a in MAMMALS else "no",
        }
        for a in animals
    ]


@pytest.fixture
def recipe(tmp_path, tiny_model_dir):
    train = _rows(ANIMALS) + _rows(ANIMALS[:3])  # three exact duplicates for curation to remove
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    evals = _rows(ANIMALS[:6], "Tell me: is a {a} a mammal? Answer yes or no.")
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evals))
    toy = write_questions(tmp_path / "toy.jsonl", toy_questions())
    path = tmp_path / "recipe.yaml"
    path.write_text(
        f"""
name: tiny
output_dir: {tmp_path / "run"}
model: {{name: {tiny_model_dir}}}
data:
  sources: [{{path: {tmp_path / "train.jsonl"}}}]
  eval_sources: [{{path: {tmp_path / "eval.jsonl"}}}]
curation:
  steps: [{{type: exact_dedup}}]
render: {{max_length: 64}}
training: {{max_steps: 4, batch_size: 2, lr: 1.0e-3, eval_steps: 2}}
evaluation:
  metrics: [exact_match, accuracy]
  max_new_tokens: 2
  batch_size: 4
  icl_k: 1
  mmlu: {{enabled: false}}
  multiple_choice: [{{name: toy, path: {toy}}}]
  retention: {{benchmark: toy}}
  latency: {{token_counts: [1, 2], prompt_lengths: [8], repeats: 1}}
  symptoms: {{general_prompts: 4}}
  safety: {{max_new_tokens: 8}}
"""
    )
    return path


def _console(capsys) -> str:
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_run_goes_from_raw_data_to_one_report_and_skips_what_is_up_to_date(recipe, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", str(recipe)]) == 0
    for stage in ("curate", "preview", "train", "evaluate", "report"):
        assert state.marker_path(run, stage).is_file(), stage
    report = json.loads((run / "report.json").read_text())
    head = report["headline"]
    assert head["records in → kept"] == "15 → 12"
    assert "exact_match: base → fine-tuned" in head
    assert "exact_match: base + in-context examples" in head
    assert head["toy: base → fine-tuned"].endswith(("pass)", "warn)", "too small)"))
    assert "symptoms of damage" in head and "refuses harmful requests: base → fine-tuned" in head
    html = (run / "report.html").read_text()
    assert "data:image/png;base64," in html
    out = _console(capsys)  # the headline is the last thing printed, where the user looks
    assert (
        "headline" in out[out.index("run finished") :]
        and "records in → kept" in out.split("run finished")[-1]
    )

    assert main(["run", str(recipe)]) == 0
    assert _console(capsys).count("up to date, skipped") == 5

    # --from evaluate re-runs evaluation and the report only
    assert main(["run", str(recipe), "--from", "evaluate"]) == 0
    out = _console(capsys)
    assert out.count("up to date, skipped") == 3 and "evaluating base" in out


def test_until_stops_and_changed_training_inputs_never_resume_old_checkpoints(recipe, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", str(recipe), "--until", "curate"]) == 0
    assert state.marker_path(run, "curate").is_file() and not state.marker_path(run, "preview").exists()

    assert main(["run", str(recipe), "--until", "train"]) == 0
    first = json.loads((run / "train" / "summary.json").read_text())
    assert first["steps"] == 4 and not first.get("resumed_from")
    # other training inputs: the old checkpoints must not be resumed (they belong to another run)
    capsys.readouterr()
    assert main(["run", str(recipe), "--until", "train", "training.lr=5e-4"]) == 0
    assert "come from other inputs" in _console(capsys)
    second = json.loads((run / "train" / "summary.json").read_text())
    assert second["steps"] == 4 and not second.get("resumed_from")


def test_ablate_trains_raw_curated_random_and_a_fraction_and_compares_them_on_the_same_sets(
    recipe, tmp_path, capsys
):
    assert main(["ablate", str(recipe), "--fractions", "0.5"]) == 0
    out = tmp_path / "run" / "ablation"
    summary = json.loads((out / "report.json").read_text())
    rows = {r["variant"]: r for r in summary["variants"]}
    assert list(rows) == ["base", "raw", "curated", "random", "curated-50%"]
    assert rows["raw"]["records"] == 15 and rows["curated"]["records"] == 12  # the 3 duplicates removed
    assert rows["random"]["records"] == 12 and rows["curated-50%"]["records"] == 6
    for name in ("raw", "random", "curated-50%"):
        assert (out / name / "final").is_dir() and (out / name / "recipe.resolved.yaml").is_file()
        assert "p_value" in rows[name]["vs_curated"]
        lo, hi = rows[name]["exact_match_ci95"]
        assert lo <= rows[name]["exact_match"] <= hi
        assert rows[name]["retention"]["benchmark"] == "toy"
    assert len(summary["findings"]) == 4  # base, raw, random, 50% each against curated
    html = (out / "report.html").read_text()
    assert "Does curation pay?" in html and "Symptoms of a damaged model" in html
    console = _console(capsys)
    assert "ablation" in console and "curated-50%" in console

    # a variant is a run folder `sftlab eval` reopens; a second ablation reuses what is trained
    assert main(["eval", str(out / "random" / "recipe.resolved.yaml")]) == 0
    assert main(["ablate", str(recipe), "--variants", "raw,curated"]) == 0
    assert "raw: trained already, skipped" in _console(capsys)


def test_ablate_bad_options_are_one_line(recipe, capsys):
    assert main(["ablate", str(recipe), "--variants", "raw,cleaned"]) == 1
    assert "--variants cleaned: unknown" in _console(capsys)
    assert main(["ablate", str(recipe), "--fractions", "half"]) == 1
    assert "--fractions half: not numbers" in _console(capsys)
    assert main(["ablate", str(recipe), "--fractions", "1.5"]) == 1
    assert "each must be between 0 and 1" in _console(capsys)


def test_ablation_findings_use_a_two_sided_paired_test():
    """The quickstart's ablation: curated vs base 23 better / 7 worse is significant, either direction counts."""
    from sftlab.evaluate.stats import mcnemar_two_sided
    from sftlab.pipeline.ablate_report import findings

    def row(name, em, better=0, worse=0):
        test = {"curated_better": better, "curated_worse": worse, "p_value": mcnemar_two_sided(better, worse)}
        return {"variant": name, "exact_match": em, **({"vs_curated": test} if name != "curated" else {})}

    rows = [
        row("base", 0.175, 23, 7),
        row("raw", 1.0, 0, 17),
        row("curated", 0.575),
        row("random", 0.425, 12, 6),
    ]
    said = findings(rows, "curated")
    assert "curated is significantly better" in said[0] and "p = 0.0052" in said[0]
    assert "curated is significantly worse" in said[1]
    assert "no significant difference" in said[2] and "p = 0.24" in said[2]
