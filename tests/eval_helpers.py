"""Helpers shared by the eval tests: tiny tasks and a few steps of plain AdamW on the answer tokens."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from sftlab.data.record import Conversation, Meta, Turn
from sftlab.evaluate.multiple_choice import MCQuestion, build_prompt, letter_ids
from sftlab.render import IGNORE_INDEX, render_record

ANIMALS = [("dog", "yes"), ("cat", "yes"), ("trout", "no"), ("whale", "yes"),
           ("eagle", "no"), ("frog", "no"), ("horse", "yes"), ("shark", "no")]  # fmt: skip
WORDS = ["apple", "river", "stone", "cloud", "tiger", "piano", "glass", "candle"]
MORE_WORDS = WORDS + [
    "bread", "chair", "dance", "eagle", "field", "grape", "house", "island", "jacket", "kettle", "lemon", "market", "needle",
    "orange", "pencil", "queen", "rabbit", "silver", "table", "umbrella", "valley", "window", "yellow", "zebra", "anchor", "basket",
    "castle", "desert", "engine", "forest", "garden", "hammer", "insect", "jungle", "kitten", "ladder", "mirror", "number", "ocean",
    "planet", "rocket", "saddle", "tunnel", "violin", "wagon", "bottle", "button", "carpet", "dragon", "feather", "helmet", "lantern",
]  # fmt: skip


def mammal_records() -> list[Conversation]:
    return [
        Conversation(
            [Turn("user", f"Is a {a} a mammal?"), Turn("assistant", y)],
            meta=Meta(id=a, label=y, task="mammal"),
        )
        for a, y in ANIMALS
    ]


def toy_questions(n: int = 8) -> list[MCQuestion]:
    """``n`` (up to 60) questions told apart by one word, answers cycling A-D (learnable by memorising)."""
    assert n <= len(MORE_WORDS)
    return [
        MCQuestion(f"Which option goes with {w}?", ["one", "two", "three", "four"], i % 4, "toy")
        for i, w in enumerate(MORE_WORDS[:n])
    ]


def write_questions(path: Path, questions: list[MCQuestion]) -> Path:
    rows = [
        {"question": q.question, **{f"answer_{k}": o for k, o in zip("abcd", q.options, strict=True)},
         "correct_answer": "ABCD"[q.answer], "topic": q.subject}
        for q in questions
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def train_on(
    model, pad_id: int, seqs: list[tuple[list[int], list[int]]], steps: int = 40, lr: float = 1e-2
) -> float:
    """AdamW on (ids, labels); the LM head runs only where labels are set (fast over a 49k vocabulary)."""
    width = max(len(ids) for ids, _ in seqs)
    ids = torch.full((len(seqs), width), pad_id)
    labels = torch.full((len(seqs), width), IGNORE_INDEX)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (a, b) in enumerate(seqs):
        ids[i, : len(a)], labels[i, : len(a)], mask[i, : len(a)] = torch.tensor(a), torch.tensor(b), 1
    target = labels[:, 1:]
    keep = target != IGNORE_INDEX
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1][keep]
        loss = torch.nn.functional.cross_entropy(model.lm_head(hidden), target[keep])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return loss.item()


def train_on_records(model, tokenizer, records, steps: int = 30) -> float:
    samples = [render_record(r, tokenizer) for r in records]
    return train_on(model, tokenizer.pad_token_id, [(s.input_ids, s.labels) for s in samples], steps)


def train_on_questions(model, tokenizer, questions: list[MCQuestion], steps: int = 40) -> float:
    letters = letter_ids(tokenizer, 4)
    seqs = []
    for q in questions:
        ids = tokenizer(build_prompt(q)).input_ids + [letters[q.answer]]
        seqs.append((ids, [IGNORE_INDEX] * (len(ids) - 1) + [letters[q.answer]]))
    return train_on(model, tokenizer.pad_token_id, seqs, steps)


def damage(model, scale: float = 0.5, seed: int = 0) -> None:
    """Add Gaussian noise to every weight (a model that forgot what it knew)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
