"""Our text metrics agree with their reference implementations on 1,000 varied pairs.

Pairs are built from the embedded MMLU questions and options, then edited the ways model answers
differ from references: case, punctuation, dropped/swapped/repeated words, numbers, hyphens,
apostrophes, accents and other scripts, stray whitespace, empty answers.
"""

from __future__ import annotations

import json
import random

import pytest
import sacrebleu

from sftlab.evaluate import metrics as M
from sftlab.evaluate.mmlu import embedded_mmlu_path

rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer", reason="rouge-score is in the dev extra")

EXTRAS = [
    "café",
    "naïve",
    "über",
    "東京",
    "Москва",
    "e-mail",
    "don't",
    "3.5%",
    "U.S.",
    "—",
    "(see note)",
    "#42",
    "x_y",
]


def _edit(text: str, rng: random.Random) -> str:
    words = text.split()
    for _ in range(rng.randint(0, 3)):
        op = rng.choice(["drop", "swap", "repeat", "extra", "case", "punct", "number"])
        if not words:
            break
        i = rng.randrange(len(words))
        if op == "drop":
            words.pop(i)
        elif op == "swap" and len(words) > 1:
            j = rng.randrange(len(words))
            words[i], words[j] = words[j], words[i]
        elif op == "repeat":
            words.insert(i, words[i])
        elif op == "extra":
            words.insert(i, rng.choice(EXTRAS))
        elif op == "case":
            words[i] = words[i].upper() if rng.random() < 0.5 else words[i].capitalize()
        elif op == "punct":
            words[i] += rng.choice([".", ",", "!", "?", ";", ":", '"', "'s"])
        else:
            words[i] = str(rng.randint(0, 2000))
    joined = rng.choice([" ", "  ", " \n", "\t"]).join(words)
    return rng.choice(["", " ", "\n"]) + joined + rng.choice(["", ".", " ", "!"])


@pytest.fixture(scope="module")
def pairs() -> list[tuple[str, str]]:
    rng = random.Random(18)
    rows = [json.loads(line) for line in embedded_mmlu_path().read_text(encoding="utf-8").splitlines()[:3000]]
    texts = [r["question"] for r in rows] + [r[k] for r in rows for k in ("answer_a", "answer_b")]
    out = []
    for _ in range(1000):
        ref = rng.choice(texts)
        roll = rng.random()
        if roll < 0.03:
            pred = ""  # an empty answer
        elif roll < 0.10:
            pred = rng.choice(texts)  # an unrelated answer
        else:
            pred = _edit(ref, rng)
        out.append((pred, ref))
    return out


def test_rouge_l_equals_rouge_score_on_1000_pairs(pairs):
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    ours = [M.rouge_l([p], [r]) for p, r in pairs]
    theirs = [scorer.score(r, p)["rougeL"].fmeasure for p, r in pairs]
    agree = sum(abs(a - b) <= 1e-12 for a, b in zip(ours, theirs, strict=True))
    assert agree == len(pairs)
    assert M.rouge_l([p for p, _ in pairs], [r for _, r in pairs]) == pytest.approx(sum(theirs) / len(theirs))
    assert 0.2 < sum(theirs) / len(theirs) < 0.95  # the pairs are varied: neither all equal nor all unrelated


def test_bleu_and_chrf_equal_sacrebleu_on_1000_pairs(pairs):
    preds, refs = [p for p, _ in pairs], [r for _, r in pairs]
    assert M.bleu(preds, refs) == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score, abs=1e-9)
    assert M.chrf(preds, refs) == pytest.approx(sacrebleu.corpus_chrf(preds, [refs]).score, abs=1e-9)
    one_bleu = [M.bleu([p], [r]) for p, r in pairs[:1000]]
    one_chrf = [M.chrf([p], [r]) for p, r in pairs[:1000]]
    assert one_bleu == pytest.approx([sacrebleu.corpus_bleu([p], [[r]]).score for p, r in pairs], abs=1e-9)
    assert one_chrf == pytest.approx([sacrebleu.corpus_chrf([p], [[r]]).score for p, r in pairs], abs=1e-9)
