"""MinHash/LSH, ROUGE-L index (against the rouge-score reference), exact dedup keep rules, conflicts,
decontamination against the embedded MMLU, splits and augmentation."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from curate_helpers import VOCAB, conv, mmlu_rows
from sftlab.curate.steps.base import StepStats
from sftlab.curate.steps.minhash import MinHasher, jaccard, lsh_params, near_duplicate_clusters
from sftlab.curate.steps.registry import build_step
from sftlab.curate.steps.rouge import RougeIndex, rouge_tokens
from sftlab.curate.steps.text import words
from sftlab.data.record import Conversation, Meta, Turn


def run(step_cfg, records):
    step = build_step(step_cfg)
    stats = StepStats(step.name)
    decisions = list(step.run(records, stats))
    return decisions, stats, step


def _true_jaccard(a: str, b: str, n: int = 3) -> float:
    wa, wb = words(a), words(b)
    sa = {tuple(wa[i : i + n]) for i in range(len(wa) - n + 1)}
    sb = {tuple(wb[i : i + n]) for i in range(len(wb) - n + 1)}
    return len(sa & sb) / len(sa | sb)


# ── MinHash ──────────────────────────────────────────────────────────────


def test_minhash_estimates_jaccard():
    rng = random.Random(0)
    hasher = MinHasher(num_perm=256, ngram=3)
    errors = []
    for _ in range(40):
        base = [rng.choice(VOCAB) for _ in range(60)]
        other = base[:]
        for _ in range(rng.randint(0, 20)):
            other[rng.randrange(60)] = rng.choice(VOCAB)
        a, b = " ".join(base), " ".join(other)
        sig = hasher.signatures([a, b])
        errors.append(abs(jaccard(sig[0], sig[1]) - _true_jaccard(a, b)))
    assert np.mean(errors) < 0.04 and max(errors) < 0.12


def test_minhash_is_deterministic_and_cjk_aware():
    texts = [
        "我喜欢吃苹果和香蕉，也喜欢喝茶。",
        "我喜欢吃苹果和香蕉，也喜欢喝咖啡。",
        "今天下午我们去公园散步吧。",
    ]
    s1 = MinHasher(num_perm=128, ngram=3).signatures(texts)
    s2 = MinHasher(num_perm=128, ngram=3).signatures(texts)
    assert (s1 == s2).all()
    # Without spaces, CJK is shingled by characters: the first two are close, the third is not.
    assert jaccard(s1[0], s1[1]) > 0.5 > 0.1 > jaccard(s1[0], s1[2])


def test_short_and_empty_texts_have_signatures():
    sig = MinHasher(num_perm=64, ngram=5).signatures(["hi there", "hi there", "", "bye"])
    assert jaccard(sig[0], sig[1]) == 1.0
    assert jaccard(sig[0], sig[3]) < 0.2
    assert near_duplicate_clusters(sig, 0.8) == [[0, 1]]  # empty texts never cluster


def test_lsh_params_cover_num_perm_and_favour_recall():
    bands, rows = lsh_params(0.7, 128)
    assert bands * rows <= 128
    # At Jaccard 0.8 a pair becomes a candidate with probability > 99 %.
    assert 1 - (1 - 0.8**rows) ** bands > 0.99


def test_minhash_dedup_keep_rules_and_clusters():
    rng = random.Random(1)
    base = " ".join(rng.choice(VOCAB) for _ in range(50))
    near = base.rsplit(" ", 1)[0] + " extra"
    other = " ".join(rng.choice(VOCAB) for _ in range(50))
    recs = [
        conv("q1", base, "a", "t"),
        conv("q1", near + " and a much longer ending here", "b", "t"),
        conv("q2", other, "c", "t"),
    ]
    recs[0].meta.extra["scores"] = {"quality": 0.9}
    recs[1].meta.extra["scores"] = {"quality": 0.2}
    dec, stats, _ = run({"type": "minhash_dedup", "threshold": 0.6}, recs)
    assert [d.reason for d in dec] == [None, "near_duplicate", None]
    assert stats.details["clusters"][0]["kept"] == "a" and stats.details["clusters"][0]["removed"] == ["b"]
    dec, _, _ = run({"type": "minhash_dedup", "threshold": 0.6, "keep": "longest_answer"}, recs)
    assert [d.reason for d in dec] == ["near_duplicate", None, None]
    assert dec[0].detail == "duplicate of b"
    dec, _, _ = run(
        {"type": "minhash_dedup", "threshold": 0.6, "keep": "best_score", "score": "quality"}, recs
    )
    assert [d.reason for d in dec] == [None, "near_duplicate", None]


def test_exact_dedup_normalises_and_respects_field():
    recs = [
        conv("What is 2+2?", "4", "a", "t"),
        conv("what  is 2+2?", "4", "b", "t"),
        conv("What is 2+2?", "Four", "c", "t"),
    ]
    dec, stats, _ = run({"type": "exact_dedup"}, recs)
    assert [d.reason for d in dec] == [None, "exact_duplicate", None]
    dec, stats, _ = run({"type": "exact_dedup", "field": "prompt"}, recs)
    assert [d.reason for d in dec] == [None, "exact_duplicate", "exact_duplicate"]
    assert stats.details["cluster_count"] == 1 and stats.details["clusters"][0]["size"] == 3
    assert stats.details["clusters"][0]["text"] == "what  is 2+2?"  # the report shows what the cluster is


def test_rouge_dedup_clusters_show_their_text():
    recs = [
        conv("Write a short poem about the sea", "x", "a", "t"),
        conv("Write a short poem about the sea.", "y", "b", "t"),
    ]
    _, stats, _ = run({"type": "rouge_dedup"}, recs)
    assert stats.details["clusters"][0]["text"].startswith("Write a short poem")


# ── ROUGE-L ──────────────────────────────────────────────────────────────


def _instructions(n: int, seed: int = 0) -> list[str]:
    """Instructions with many near-paraphrases, so that the 0.7 threshold is exercised often."""
    rng = random.Random(seed)
    verbs = ["Write", "Explain", "Describe", "Summarize", "List", "Give"]
    objs = ["a short poem", "three facts", "the main idea", "a simple recipe", "five tips", "an example"]
    out = []
    for _ in range(n):
        topic = " ".join(rng.sample(VOCAB[:40], rng.randint(1, 3)))
        s = f"{rng.choice(verbs)} {rng.choice(objs)} about the {topic}"
        if rng.random() < 0.5:
            s += rng.choice([" for a child", " in simple words", ".", " please", " using two sentences"])
        out.append(s)
    return out


def test_rouge_index_matches_rouge_score_decisions():
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    texts = _instructions(300)
    # Reference: Self-Instruct's loop, all pairs with rouge-score.
    kept_ref: list[str] = []
    ref_keep = []
    for t in texts:
        best = max((scorer.score(t, k)["rougeL"].fmeasure for k in kept_ref), default=0.0)
        keep = best < 0.7
        ref_keep.append(keep)
        if keep:
            kept_ref.append(t)
    recs = [conv(t, "ok", f"i{i}", "t") for i, t in enumerate(texts)]
    dec, _, _ = run({"type": "rouge_dedup", "threshold": 0.7}, recs)
    assert [d.kept for d in dec] == ref_keep
    assert 0.1 < sum(ref_keep) / len(ref_keep) < 0.9  # the threshold really decides something


def test_rouge_index_max_score_is_exact():
    rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    texts = _instructions(80, seed=3)
    index = RougeIndex()
    for t in texts[:60]:
        index.add(t)
    for q in texts[60:]:
        ref = max(scorer.score(q, k)["rougeL"].fmeasure for k in texts[:60])
        assert index.max_score(q) == pytest.approx(ref, abs=1e-12)


def test_rouge_tokens_cjk():
    assert rouge_tokens("写一首诗 about cats!") == ["写", "一", "首", "诗", "about", "cats"]
    index = RougeIndex()
    index.add("写一首关于春天的诗")
    assert index.max_score("写一首关于秋天的诗") > 0.8
    assert index.max_score("解释相对论") == 0.0


# ── conflicts ────────────────────────────────────────────────────────────


def test_conflict_policies():
    q = "What is 17 times 3? Reply with the number only."
    recs = [
        conv(q, "51", "a", "m"),
        conv(q, "51.", "b", "m"),
        conv(q, "52", "c", "m"),
        conv("Other?", "x", "d", "m"),
    ]
    dec, stats, _ = run({"type": "conflicts"}, recs)
    assert [d.reason for d in dec] == [None, None, "conflict_minority", None]
    assert stats.details["conflict_groups"] == 1
    group = stats.details["groups"][0]
    assert group["kept"] == ["a", "b"] and len(group["classes"]) == 2
    dec, _, _ = run({"type": "conflicts", "policy": "drop_all"}, recs)
    assert [d.reason for d in dec] == ["conflict", "conflict", "conflict", None]
    dec, stats, _ = run({"type": "conflicts", "policy": "keep_all_and_flag"}, recs)
    assert all(d.kept for d in dec) and stats.flagged == 3
    assert recs[2].meta.extra["flags"] == ["conflicts:conflict"]


def test_conflicts_by_label_json_and_long_answers():
    def lab(p, a, label, rid):
        return Conversation([Turn("user", p), Turn("assistant", a)], meta=Meta(id=rid, label=label))

    tie = [
        lab("Review: great phone", "positive", "positive", "a"),
        lab("Review: great phone", "Positive!", "negative", "b"),
    ]
    dec, _, _ = run({"type": "conflicts"}, tie)
    assert [d.reason for d in dec] == ["conflict_tie", "conflict_tie"]
    js = [
        conv("Extract", '{"city": "Paris", "n": 2}', "a", "t"),
        conv("Extract", '```json\n{"n":2,"city":"Paris"}\n```', "b", "t"),
    ]
    dec, _, _ = run({"type": "conflicts"}, js)
    assert all(d.kept for d in dec)  # same JSON value, different formatting
    js.append(conv("Extract", '{"city": "Lyon", "n": 2}', "c", "t"))
    dec, _, _ = run({"type": "conflicts"}, js)
    assert [d.reason for d in dec] == [None, None, "conflict_minority"]
    long_a = "The tower was completed in 1889 for the World's Fair and is 330 metres tall today."
    long_b = "It was completed in 1889 for the World's Fair, and today it is 330 metres tall."
    long_c = "The tower was completed in 1901 for the World's Fair and is 330 metres tall today."
    p = "Tell me when the Eiffel Tower was built and how tall it is."
    dec, _, _ = run(
        {"type": "conflicts"},
        [conv(p, long_a, "a", "t"), conv(p, long_b, "b", "t"), conv(p, long_c, "c", "t")],
    )
    assert [d.reason for d in dec] == [None, None, "conflict_minority"]


def test_conflicts_with_minhash_prompt_match():
    p1 = "Please tell me what the capital city of the country of France is called"
    p2 = "Please tell me what the capital city of the country of France is called?!"
    recs = [conv(p1, "Paris", "a", "t"), conv(p2, "Lyon", "b", "t")]
    assert all(d.kept for d in run({"type": "conflicts"}, recs)[0])  # not the same prompt exactly
    dec, _, _ = run({"type": "conflicts", "match": "minhash", "policy": "drop_all"}, recs)
    assert [d.reason for d in dec] == ["conflict", "conflict"]


# ── decontamination ──────────────────────────────────────────────────────


def test_decontaminate_finds_real_mmlu_questions(tmp_path):
    rows = mmlu_rows(5, seed=7)
    leaked = [
        conv(f"Quiz time!\n{r['question']}\nA. {r['answer_a']}", r["correct_answer"], f"l{i}", "mcq")
        for i, r in enumerate(rows)
    ]
    # A paraphrase-free partial copy (the tail of a question) still leaks.
    tail = " ".join(rows[0]["question"].split()[-14:])
    leaked.append(conv(f"Consider: {tail}", "B", "tail", "mcq"))
    clean = [
        conv("Explain why the sky is blue in two sentences.", "Rayleigh scattering of sunlight.", "c", "t")
    ]
    dec, stats, _ = run({"type": "decontaminate"}, leaked + clean)
    assert [d.reason for d in dec] == ["contaminated"] * 6 + [None]
    assert dec[0].detail.startswith("mmlu: ")
    assert stats.details["eval_sets"]["mmlu"] == 14042  # the two header rows are dropped
    assert stats.details["matches"]["mmlu"] == 6


def test_decontaminate_keeps_the_retention_set_out_of_training():
    from sftlab.curate.steps.decontaminate import benchmark_questions

    question = next(q for q in benchmark_questions("arc_easy") if len(q.split()) > 16)
    leaked = conv(f"Science homework: {question}", "The answer is B.", "leak", "mcq")
    clean = conv("Explain why the sky is blue in two sentences.", "Rayleigh scattering.", "c", "t")
    dec, stats, _ = run({"type": "decontaminate", "mmlu": False}, [leaked, clean])
    assert [d.reason for d in dec] == ["contaminated", None] and dec[0].detail.startswith("arc_easy: ")
    assert stats.details["eval_sets"]["arc_easy"] == 570
    dec, stats, _ = run({"type": "decontaminate", "mmlu": False, "benchmarks": []}, [leaked])
    assert dec[0].kept and "arc_easy" not in stats.details["eval_sets"]


def test_decontaminate_with_eval_file_and_short_texts(tmp_path):
    ev = tmp_path / "eval.jsonl"
    ev.write_text(
        json.dumps({"instruction": "Name the largest planet in our solar system today", "output": "Jupiter"})
        + "\n"
        + json.dumps({"question": "Why?"})
        + "\n",
        encoding="utf-8",
    )
    recs = [
        conv("Quick one: name the largest planet in our solar system today.", "Jupiter", "a", "t"),
        conv("Name the largest planet.", "Jupiter", "b", "t"),
    ]
    dec, stats, _ = run(
        {"type": "decontaminate", "eval_files": [str(ev)], "mmlu": False, "benchmarks": []}, recs
    )
    assert [d.reason for d in dec] == ["contaminated", None]
    assert dec[0].detail.startswith("eval.jsonl: ")
    assert stats.details["eval_texts_too_short"] == 1  # "Why?" is too short to be evidence
    dec, _, _ = run({"type": "decontaminate", "eval_files": [str(ev)], "mmlu": False, "action": "flag"}, recs)
    assert all(d.kept for d in dec) and recs[0].meta.extra["flags"] == ["decontaminate:contaminated"]


def test_decontaminate_missing_eval_file_is_a_data_error(tmp_path):
    from sftlab.errors import DataError

    with pytest.raises(DataError, match="eval file not found"):
        run(
            {"type": "decontaminate", "eval_files": [str(tmp_path / "nope.jsonl")]},
            [conv("q", "a", "x", "t")],
        )


# ── splits and augmentation ──────────────────────────────────────────────


def test_split_is_stratified_and_reproducible():
    recs = [conv(f"q{i}", "a", f"r{i}", "big" if i < 100 else "small") for i in range(120)]
    cfg = {"type": "split", "train": 0.8, "validation": 0.1, "test": 0.1, "seed": 3}
    dec, stats, _ = run(cfg, recs)
    assert all(d.kept for d in dec)
    assert stats.details["splits"] == {
        "big": {"train": 80, "validation": 10, "test": 10},
        "small": {"train": 16, "validation": 2, "test": 2},
    }
    first = [r.meta.extra["split"] for r in recs]
    recs2 = [conv(f"q{i}", "a", f"r{i}", "big" if i < 100 else "small") for i in range(120)]
    run(cfg, recs2)
    assert first == [r.meta.extra["split"] for r in recs2]


def test_split_fractions_must_sum_to_one():
    from sftlab.errors import RecipeError

    with pytest.raises(RecipeError, match="must be 1"):
        build_step({"type": "split", "train": 0.5, "validation": 0.1, "test": 0.1})


def test_augment_adds_new_records_with_provenance():
    recs = [conv(f"Explain the idea number {i} clearly.", f"Answer {i}", f"r{i}", "t") for i in range(50)]
    dec, stats, _ = run({"type": "augment", "fraction": 0.5, "seed": 1}, recs)
    added = [d for d in dec if d.added]
    assert stats.added == len(added) and 15 <= len(added) <= 35
    assert stats.records_in + stats.added == stats.kept + stats.rejected_total
    v = added[0].record
    parent = v.meta.provenance["augmented_from"]
    original = next(r for r in recs if r.meta.id == parent)
    assert v.meta.id.startswith(parent + "~aug") and v.instruction != original.instruction
    assert v.response == original.response


def test_record_spool_round_trips_in_order_and_by_index_interleaved():
    from sftlab.curate.steps.spool import RecordSpool

    recs = [conv(f"question {i}", f"answer {i} ünïcode", f"id{i}", "t") for i in range(50)]
    with RecordSpool() as spool:
        assert [r.meta.id for r in spool.tee(recs)] == [r.meta.id for r in recs]
        assert len(spool) == 50 and spool[17].to_dict() == recs[17].to_dict()
        seen = []
        for i, r in enumerate(spool):  # reading by index in the middle must not disturb the iteration
            seen.append(r.to_dict())
            if i % 7 == 0:
                assert spool[49 - i].meta.id == f"id{49 - i}"
        assert seen == [r.to_dict() for r in recs]
