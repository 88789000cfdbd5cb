"""The select step: budget, similarity ceiling with real sentence embeddings, per-task quotas, accounting."""

from __future__ import annotations

import numpy as np
import pytest

from sftlab.curate.embeddings import LMEmbedder, load_embedder, mean_pairwise_distance, minilm_dir
from sftlab.curate.steps.base import StepStats
from sftlab.curate.steps.diversity import cluster_keys
from sftlab.curate.steps.domains import domain_quotas
from sftlab.curate.steps.ranking import combined_scores
from sftlab.curate.steps.registry import build_step
from sftlab.curate.steps.selection import group_caps, has_answer, score_function
from sftlab.data.record import Conversation, Meta, TextRecord, Turn
from sftlab.errors import DataError, RecipeError


def rec(id: str, prompt: str, answer: str, score: float | None, task: str | None = None) -> Conversation:
    extra = {"scores": {"heuristic": score}} if score is not None else {}
    return Conversation(
        turns=[Turn("user", prompt), Turn("assistant", answer)], meta=Meta(id=id, task=task, extra=extra)
    )


@pytest.fixture(scope="module")
def minilm():
    """The packaged all-MiniLM-L6-v2, loaded once for the module."""
    return load_embedder("minilm")


def select(records, embedder=None, **config):
    step = build_step({"type": "select", **config})
    if embedder is not None:
        step.embedder = embedder
    stats = StepStats("select")
    decisions = list(step.run(records, stats))
    assert len(decisions) == len(records) == stats.records_in
    assert stats.kept + stats.rejected_total == stats.records_in  # every record: exactly one decision
    assert [d.record for d in decisions] == records  # in input order
    return {d.record.meta.id: d.reason for d in decisions}, stats


# ── pieces ──────────────────────────────────────────────────────────────────


def test_score_expressions():
    assert score_function("heuristic")({"heuristic": 0.5}) == 0.5
    assert (
        score_function("judge_quality * judge_complexity / 10")({"judge_quality": 8, "judge_complexity": 5})
        == 4
    )
    assert score_function("-ifd")({}) is None
    assert score_function("a / b")({"a": 1, "b": 0}) is None
    for bad in ("heuristic ** 2", "open('x')", "x if y else z", "'text'", "a.b", "(("):
        with pytest.raises(RecipeError, match="select.score"):
            score_function(bad)


def test_group_caps():
    caps = group_caps(["a", "b", "c"], budget=10, per_task_budget={"a": 1, "*": 3}, max_share_per_task=None)
    assert caps == {"a": 1, "b": 3, "c": 3}
    caps = group_caps(["a", "b"], budget=3, per_task_budget=None, max_share_per_task=0.1)
    assert caps == {"a": 1, "b": 1}  # at least one each
    assert group_caps(["a"], budget=None, per_task_budget=None, max_share_per_task=None) == {
        "a": float("inf")
    }


def test_minilm_embeddings_are_unit_vectors_that_rank_paraphrases_close(minilm):
    assert (minilm_dir() / "model.safetensors").is_file()
    vectors = minilm.encode(
        ["How do I bake bread?", "What is a recipe for baking bread?", "Explain quantum spin."]
    )
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > 0.7 > 0.3 > sims[0, 2]


def test_embeddings_come_back_in_input_order_whatever_the_batching(minilm):
    texts = [
        "short",
        "a much longer text about tides, the moon and the sea " * 5,
        "",
        "middle length text here",
    ]
    together = minilm.encode(texts)
    alone = np.concatenate([minilm.encode([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)


def test_mean_pairwise_distance():
    same = np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (4, 1))
    assert mean_pairwise_distance(same) == pytest.approx(0.0)
    opposite = np.array([[1.0, 0.0], [-1.0, 0.0]], dtype=np.float32)
    assert mean_pairwise_distance(opposite) == pytest.approx(2.0)
    assert mean_pairwise_distance(np.zeros((1, 2), dtype=np.float32)) == 0.0


# ── the step ────────────────────────────────────────────────────────────────

TOPICS = [
    ("bread", "How do I bake sourdough bread at home?", "Feed a starter, mix, proof overnight, bake hot."),
    ("tides", "Why does the ocean have tides?", "The moon's gravity pulls the water, making two bulges."),
    ("python", "How do I reverse a list in Python?", "Use my_list[::-1] or my_list.reverse()."),
    ("chess", "What is castling in chess?", "The king moves two squares toward a rook, which jumps over it."),
    ("tax", "When is the income tax deadline in the United States?", "Usually April 15th."),
]


def test_budget_keeps_the_best_and_rejects_the_rest_as_over_budget(minilm):
    records = [
        rec(name, q, a, score) for (name, q, a), score in zip(TOPICS, [0.2, 0.9, 0.5, 0.7, 0.1], strict=True)
    ]
    reasons, stats = select(records, minilm, budget=3, max_similarity=0.9)
    assert reasons == {
        "tides": None,
        "chess": None,
        "python": None,
        "bread": "over_budget",
        "tax": "over_budget",
    }
    assert stats.details["selected"] == 3 and stats.details["score_cutoff"] == 0.5
    spread = stats.details["embedding_spread"]
    assert 0.5 < spread["selected"] <= 2.0 and 0.5 < spread["pool"] <= 2.0
    assert spread["more_diverse_than_random"] is None  # 3 of 5: a random subset is mostly the same records


def test_near_identical_records_are_not_both_selected(minilm):
    records = [
        rec("a", "How do I bake sourdough bread at home?", "Feed a starter, mix, proof, bake.", 0.6),
        rec("a-copy", "How can I bake sourdough bread at home?", "Feed a starter, mix, proof, bake.", 0.9),
        rec("b", "Why does the ocean have tides?", "The moon's gravity.", 0.5),
        rec("c", "What is castling in chess?", "A king and rook move together.", 0.4),
    ]
    reasons, stats = select(records, minilm, max_similarity=0.9)
    # the better-scored twin wins; the other is rejected naming it
    assert reasons == {"a-copy": None, "a": "too_similar", "b": None, "c": None}
    assert "a-copy" in stats.examples["too_similar"][0]["detail"]
    # without the ceiling both twins are kept
    reasons, _ = select(records, minilm, max_similarity=None)
    assert set(reasons.values()) == {None}


def test_too_similar_records_do_not_use_up_the_budget(minilm):
    records = [
        rec(f"dup{i}", "Tell me a joke about cats.", f"Why did the cat sit{'!' * i}", 1 - i / 10)
        for i in range(4)
    ]
    records.append(rec("other", "Translate 'hello' into French.", "Bonjour.", 0.1))
    reasons, _ = select(records, minilm, budget=2, max_similarity=0.8, per_cluster=None)
    assert reasons["dup0"] is None and reasons["other"] is None
    assert [reasons[f"dup{i}"] for i in (1, 2, 3)] == ["too_similar"] * 3


def test_per_task_quotas(minilm):
    records = [rec(f"m{i}", q, a, 0.9 - i / 100, task="math") for i, (_, q, a) in enumerate(TOPICS)]
    records += [
        rec(f"w{i}", q + " Answer in French.", a, 0.5 - i / 100, task="writing")
        for i, (_, q, a) in enumerate(TOPICS[:2])
    ]
    reasons, stats = select(records, minilm, budget=4, max_share_per_task=0.5, max_similarity=None)
    assert [reasons[f"m{i}"] for i in range(5)] == [None, None, "task_quota", "task_quota", "task_quota"]
    assert reasons["w0"] is None and reasons["w1"] is None
    assert stats.details["selected_per_group"] == {"math": 2, "writing": 2}
    reasons, _ = select(records, None, per_task_budget={"math": 1, "*": 5}, max_similarity=None)
    assert sum(r is None for k, r in reasons.items() if k.startswith("m")) == 1
    assert reasons["w0"] is None and reasons["w1"] is None


def test_records_without_the_score_go_last_and_text_records_are_selectable(minilm):
    records = [
        rec("unscored", "What is castling in chess?", "A king move.", None),
        rec("scored", "Why does the ocean have tides?", "The moon.", 0.1),
        TextRecord(
            "Plain text about volcanoes and lava.", meta=Meta(id="text", extra={"scores": {"heuristic": 0.5}})
        ),
    ]
    reasons, stats = select(records, minilm, budget=2, max_similarity=0.9)
    assert reasons == {"text": None, "scored": None, "unscored": "over_budget"}
    assert stats.details["unscored"] == 1


def test_no_similarity_test_means_no_embedding_model(monkeypatch):
    records = [rec(name, q, a, s) for (name, q, a), s in zip(TOPICS, [0.1, 0.2, 0.3, 0.4, 0.5], strict=True)]
    step = build_step({"type": "select", "budget": 2, "max_similarity": None, "score": "-heuristic"})
    decisions = list(step.run(records, StepStats("select")))
    assert [d.reason for d in decisions] == [None, None, "over_budget", "over_budget", "over_budget"]
    assert step.embedder is None and "embedding_spread" not in step.details


def test_lm_embeddings_from_a_model_folder(tiny_model_dir):
    records = [rec(name, q, a, 1.0) for name, q, a in TOPICS[:3]]
    records.append(rec("twin", TOPICS[0][1], TOPICS[0][2], 0.5))  # identical text → cosine 1
    step = build_step(
        {"type": "select", "embedding": "lm", "embedding_model": str(tiny_model_dir), "max_similarity": 0.999}
    )
    decisions = list(step.run(records, StepStats("select")))
    assert isinstance(step.embedder, LMEmbedder) and step.embedder.dim == 16
    assert [d.reason for d in decisions] == [None, None, None, "too_similar"]
    assert step.details["embedding"] == "lm"


def test_lm_embedding_does_not_depend_on_padding(tokenizer, tiny_model):
    embedder = LMEmbedder(tiny_model, tokenizer, batch_size=4)
    texts = ["short", "a much longer text that needs padding in the batch with the short one"]
    together = embedder.encode(texts)
    alone = np.concatenate([embedder.encode([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-5)


def test_share_without_budget_is_a_recipe_error():
    with pytest.raises(RecipeError, match="max_share_per_task needs select.budget"):
        build_step({"type": "select", "max_share_per_task": 0.5})


def test_a_score_missing_everywhere_is_a_recipe_error():
    records = [rec("a", "q", "a", 0.5)]
    step = build_step({"type": "select", "score": "judge_quality", "max_similarity": None})
    with pytest.raises(
        RecipeError, match="'judge_quality' is missing on every record.*known scores: heuristic"
    ):
        list(step.run(records, StepStats("select")))


# ── diversity that is real, clusters, domains, empty answers ────────────────

# 12 paraphrases of one question (scored high) and 12 unrelated questions (scored low)
SAME = [
    f"{lead} bake sourdough bread at home{end}"
    for lead in ("How do I", "How can I", "What is the way to")
    for end in ("?", " easily?", " as a beginner?", " step by step?")
]
OTHER = [
    "Why does the ocean have tides?",
    "What is castling in chess?",
    "How do I reverse a list in Python?",
    "When is the income tax deadline in the United States?",
    "Who painted the Mona Lisa?",
    "How do vaccines train the immune system?",
    "What causes the northern lights?",
    "Translate 'good morning' into Japanese.",
    "What is the capital of Australia?",
    "How does a refrigerator keep food cold?",
    "Name three symptoms of dehydration.",
    "Explain what a black hole is.",
]


def _pool():
    records = [
        rec(f"same{i}", q, "Mix, proof overnight and bake hot.", 0.9 - i / 100) for i, q in enumerate(SAME)
    ]
    records += [rec(f"other{i}", q, "A short factual answer.", 0.3 - i / 100) for i, q in enumerate(OTHER)]
    return records


def test_a_selection_less_diverse_than_random_fails_or_warns(minilm):
    # a ceiling that lets paraphrases through: the ranking alone takes ten of the twelve
    with pytest.raises(DataError, match="not more diverse than a random subset.*on_not_diverse: warn"):
        select(_pool(), minilm, budget=10, max_similarity=0.99)
    _, stats = select(_pool(), minilm, budget=10, max_similarity=0.99, on_not_diverse="warn")
    spread = stats.details["embedding_spread"]
    assert spread["more_diverse_than_random"] is False
    assert spread["selected"] < spread["random_same_size"]
    assert "not more diverse" in stats.details["warning"]


def test_auto_ceiling_spreads_the_selection_beyond_random(minilm):
    reasons, stats = select(_pool(), minilm, budget=10, pool_factor=3, on_not_diverse="fail")
    spread = stats.details["embedding_spread"]
    assert spread["more_diverse_than_random"] is True and spread["selected"] > spread["random_same_size"]
    assert sum(reasons[f"same{i}"] is None for i in range(len(SAME))) == 1  # one of the paraphrases
    assert stats.details["ceiling"]["value"] < 0.9
    assert stats.rejected["too_similar"] >= len(SAME) - 1


def test_segments_of_one_source_conversation_count_as_one_cluster(minilm):
    records = [
        rec(f"roleplay_{k}", f"Continue the story, part {k}.", f"Chapter {k} of the tale.", 1 - k / 100)
        for k in range(5)
    ]
    records += [rec(f"{name}_0", q, a, 0.5) for name, q, a in TOPICS]
    reasons, stats = select(records, minilm, max_similarity=None)
    assert [reasons[f"roleplay_{k}"] for k in range(5)] == [None] + ["cluster_quota"] * 4
    assert stats.details["source_clusters"]["largest_in_selection"] == 1
    reasons, _ = select(records, minilm, max_similarity=None, per_cluster=2)
    assert sum(reasons[f"roleplay_{k}"] is None for k in range(5)) == 2
    reasons, _ = select(records, minilm, max_similarity=None, cluster_by="none")
    assert set(reasons.values()) == {None}


def test_cluster_keys_read_split_ids_parents_and_not_numberings():
    assert cluster_keys(["a_0", "a_3", "b_1", "c"]) == ["a", "a", "b", "c"]
    assert cluster_keys(["x_0", "y_0"], ["p", None]) == ["p", "y"]
    numbered = [f"row_{i}" for i in range(200)]  # a numbering, not one 200-segment chat
    assert cluster_keys(numbered) == numbered


def test_an_empty_final_answer_never_reaches_selection(minilm):
    records = [
        rec("empty", "Explain tides.", "", 0.99),
        rec("dots", "Explain castling.", " ... ", 0.98),
        rec("short", "What is 2+2?", "4", 0.1),
        Conversation(
            turns=[
                Turn("user", "Write a poem."),
                Turn("assistant", "Roses are red."),
                Turn("user", "More"),
                Turn("assistant", ""),
            ],
            meta=Meta(id="last-empty", extra={"scores": {"heuristic": 0.97}}),
        ),
    ]
    reasons, stats = select(records, minilm, max_similarity=None)
    assert reasons == {
        "empty": "empty_answer",
        "dots": "empty_answer",
        "short": None,
        "last-empty": "empty_answer",
    }
    assert stats.rejected == {"empty_answer": 3}
    assert has_answer(rec("tool", "q", "", None)) is False


def test_domain_shares_are_reported_and_kept_with_stratify(minilm):
    code = [
        rec(f"code{i}", f"Write a function {i}", f"```python\ndef f{i}(x):\n    return x * {i}\n```", 0.2)
        for i in range(6)
    ]
    prose = [
        rec(f"prose{i}", q, a + " " + "More words to make this a paragraph of prose. " * 3, 0.9)
        for i, (_, q, a) in enumerate(TOPICS)
    ]
    records = code + prose  # 6 code, 5 prose
    _, stats = select(records, None, budget=4, score="heuristic", max_similarity=None)
    domains = stats.details["domains"]
    assert domains["code"]["pool"] == 6 and domains["code"]["selected"] == 0  # the ranking alone drops code
    assert (
        domains["code"]["pool_share"] == pytest.approx(54.5) and domains["prose"]["selected_share"] == 100.0
    )
    reasons, stats = select(
        records, None, budget=4, score="heuristic", max_similarity=None, stratify="domain"
    )
    assert (
        stats.details["domains"]["code"]["selected"] == 2
        and stats.details["domains"]["prose"]["selected"] == 2
    )
    assert stats.rejected["domain_quota"] >= 1
    assert domain_quotas({"code": 6, "prose": 5}, 4) == {"code": 2, "prose": 2}


def test_auto_score_ranks_each_record_within_its_domain():
    scores = [{"heuristic": 0.9}, {"heuristic": 0.8}, {"heuristic": 0.3}, {"heuristic": 0.2}]
    assert combined_scores(scores) == [1.0, 0.6667, 0.3333, 0.0]
    # code answers score lower on prose heuristics; ranked among themselves the best code ties the best prose
    assert combined_scores(scores, ["prose", "prose", "code", "code"]) == [1.0, 0.0, 1.0, 0.0]
    # IFD >= 1 ranks last; judge ratings join in
    both = combined_scores(
        [{"ifd": 0.9, "judge_quality": 10}, {"ifd": 1.2, "judge_quality": 9}, {"ifd": 0.4}]
    )
    assert both == [1.0, 0.0, 0.5]


def test_cli_curate_fails_in_one_line_when_the_selection_is_not_diverse(tmp_path, capsys):
    import json

    import yaml

    from sftlab.cli.main import main

    data = tmp_path / "pool.jsonl"
    rows = [{"instruction": q, "output": "Mix, proof overnight and bake hot."} for q in SAME]
    rows += [{"instruction": q, "output": "A short answer."} for q in OTHER]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    recipe = {
        "name": "t",
        "output_dir": str(tmp_path / "run"),
        "data": {"sources": [{"path": str(data)}]},
        "curation": {
            "steps": [
                {"type": "score", "signals": ["heuristic"]},
                {"type": "select", "budget": 10, "max_similarity": 0.99},
            ]
        },
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    assert main(["data", "curate", str(path)]) == 1
    err = capsys.readouterr().err
    assert "not more diverse than a random subset" in err and "on_not_diverse: warn" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    recipe["curation"]["steps"][1]["on_not_diverse"] = "warn"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    assert main(["data", "curate", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "select: spread" in printed and "warning: select: the selection is not more diverse" in printed
    recipe["curation"]["steps"][1].update(max_similarity="auto", on_not_diverse="fail")
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    assert main(["data", "curate", str(path)]) == 0
    assert "warning" not in capsys.readouterr().out


def test_auto_without_any_signal_it_combines_is_a_recipe_error_naming_the_fix():
    records = [rec("a", "q", "a", None)]
    records[0].meta.extra["scores"] = {"perplexity": 12.0}
    step = build_step({"type": "select", "max_similarity": None})
    with pytest.raises(RecipeError, match="known scores: perplexity.*select.score: -perplexity"):
        list(step.run(records, StepStats("select")))
