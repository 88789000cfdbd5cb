"""Multiple-choice scoring by log-likelihood: the option the model finds most probable is its answer.

Three ways to score, zero- or k-shot, always batched:

- ``letter``: the options are listed under the question, the prompt ends in ``Answer:``;
  ONE forward pass gives the log-probabilities of `` A``/`` B``/`` C``/`` D`` at the last
  position, so a question costs one prompt, not four. Rows are left-padded with position ids
  that count real tokens, so every row's last token sits in the last column and only that
  column goes through the LM head (``logits_to_keep=1``). Small models are near chance in
  this form: picking a letter is a skill of its own.
- ``cloze``: the question alone (``Question: ...\nAnswer:``), then each option's text; the
  option with the highest log-likelihood per character wins (lm-eval's ``acc_norm``). Small
  models are well above chance in this form, so a drop can show.
- ``option_text``: the lettered prompt, then each option's text, summed log-likelihood.

>>> q = MCQuestion("2+2?", ["3", "4", "5", "6"], answer=1, subject="arithmetic")
>>> print(format_question(q, with_answer=True))
2+2?
A. 3
B. 4
C. 5
D. 6
Answer: B
>>> print(cloze_prompt(q, [MCQuestion("1+1?", ["2", "3"], answer=0)]))
The following are questions (with answers) about arithmetic.
<BLANKLINE>
Question: 1+1?
Answer: 2
<BLANKLINE>
Question: 2+2?
Answer:
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sftlab.errors import DataError
from sftlab.evaluate.continuations import score_continuations
from sftlab.evaluate.generation import left_pad
from sftlab.evaluate.stats import wilson_interval
from sftlab.models.kv_cache import cache_kwarg, cache_of
from sftlab.utils.progress import make_progress

LETTERS = ("A", "B", "C", "D", "E", "F", "G", "H")
SCORINGS = ("letter", "cloze", "option_text")

__all__ = ["LETTERS", "MCQuestion", "MCResult", "evaluate_questions", "grade", "score_continuations"]


@dataclass
class MCQuestion:
    """A question, its options, the index of the right one, and its subject.

    ``cloze`` is the whole cloze prompt when the set has its own form (HellaSwag's context
    is continued, not asked); empty means ``Question: <question>\nAnswer:``.
    """

    question: str
    options: list[str]
    answer: int
    subject: str = ""
    cloze: str = ""


@dataclass
class MCResult:
    """Accuracy (with its 95% interval) overall and per subject, every question's option scores and pick."""

    accuracy: float
    n: int
    per_subject: dict[str, float] = field(default_factory=dict)
    scores: list[list[float]] = field(default_factory=list)
    predictions: list[int] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    chance: float = 0.0
    """Expected accuracy of picking options at random: the floor a model must clear."""

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(sum(self.correct), self.n)

    def to_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "ci95": list(self.interval),
            "chance": self.chance,
            "n": self.n,
            "per_subject": self.per_subject,
            "correct": "".join(
                "1" if c else "0" for c in self.correct
            ),  # per question: the gate can be re-run
        }


def format_question(q: MCQuestion, *, with_answer: bool = False) -> str:
    """The question, lettered options and ``Answer:`` (with the right letter for a solved example)."""
    lines = [q.question.strip()] + [f"{LETTERS[i]}. {opt}" for i, opt in enumerate(q.options)]
    answer = f"Answer: {LETTERS[q.answer]}" if with_answer else "Answer:"
    return "\n".join(lines + [answer])


def build_prompt(q: MCQuestion, shots: Sequence[MCQuestion] = ()) -> str:
    """A subject header, the solved ``shots``, then ``q`` ending in ``Answer:``."""
    head = (
        f"The following are multiple choice questions (with answers) about {q.subject}.\n\n"
        if q.subject
        else ""
    )
    solved = "".join(format_question(s, with_answer=True) + "\n\n" for s in shots)
    return head + solved + format_question(q)


def cloze_prompt(q: MCQuestion, shots: Sequence[MCQuestion] = ()) -> str:
    """The question without its options, ending in ``Answer:`` (after solved ``shots``), to be continued."""
    head = f"The following are questions (with answers) about {q.subject}.\n\n" if q.subject else ""
    solved = "".join(_cloze_stem(s) + " " + s.options[s.answer].strip() + "\n\n" for s in shots)
    return head + solved + _cloze_stem(q)


def _cloze_stem(q: MCQuestion) -> str:
    return q.cloze or f"Question: {q.question.strip()}\nAnswer:"


def letter_ids(tokenizer, n: int) -> list[int]:
    """Token ids of `` A``, `` B``... (the letter as it follows ``Answer:``); DataError if not single tokens."""
    ids = []
    for letter in LETTERS[:n]:
        toks = tokenizer(" " + letter, add_special_tokens=False).input_ids
        if len(toks) != 1:
            raise DataError(
                f"' {letter}' is {len(toks)} tokens for this tokenizer; use scoring: option_text instead of letter"
            )
        ids.append(toks[0])
    return ids


def _encode(tokenizer, text: str, max_length: int | None) -> list[int]:
    ids = tokenizer(text, add_special_tokens=True).input_ids
    # Keep the end: the question and "Answer:" matter, the oldest shots can go.
    return ids[-max_length:] if max_length and len(ids) > max_length else ids


def _context_limit(model) -> int | None:
    return getattr(getattr(model, "config", None), "max_position_embeddings", None)


MIN_SHARED_PREFIX = 64
"""Tokens a group of prompts must share before their common prefix is computed once (k-shot headers + shots)."""


def score_letters(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    n_options: int = 4,
    batch_size: int = 8,
    description: str = "score",
    share_prefix: bool = False,
) -> list[list[float]]:
    """Log-probabilities of each option letter after each prompt: one forward per prompt, batched.

    With ``share_prefix`` (k-shot: every question of a subject carries the same solved shots),
    prompts that share at least :data:`MIN_SHARED_PREFIX` leading tokens are grouped, their common
    prefix runs once, and only each question's own tokens run on top of its KV cache.
    """
    import torch

    targets = torch.tensor(letter_ids(tokenizer, n_options))
    encoded = [_encode(tokenizer, p, _context_limit(model)) for p in prompts]
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out: list[list[float] | None] = [None] * len(encoded)
    groups = _prefix_groups(encoded) if share_prefix else []
    grouped = {i for _, members in groups for i in members}
    # Longest first and similar lengths together: less padding per batch.
    order = sorted((i for i in range(len(encoded)) if i not in grouped), key=lambda i: -len(encoded[i]))
    model.eval()
    with make_progress() as progress, torch.inference_mode():
        task = progress.add_task(description, total=len(encoded), info="")
        for prefix_len, members in groups:
            prefix = torch.tensor([encoded[members[0]][:prefix_len]], device=device)
            cache = cache_of(model(input_ids=prefix, use_cache=True))
            for start in range(0, len(members), batch_size):
                chunk = members[start : start + batch_size]
                rows = [encoded[i][prefix_len:] for i in chunk]
                ids, mask, pos = left_pad(rows, pad_id, device)  # the question tokens, left-padded
                batch_cache = copy.deepcopy(cache)
                batch_cache.batch_select_indices(torch.zeros(len(chunk), dtype=torch.long, device=device))
                full_mask = torch.cat(
                    [torch.ones((len(chunk), prefix_len), dtype=mask.dtype, device=device), mask], 1
                )
                logits = model(
                    input_ids=ids,
                    attention_mask=full_mask,
                    position_ids=pos + prefix_len,
                    **{cache_kwarg(model): batch_cache},
                    use_cache=True,
                    logits_to_keep=1,
                ).logits
                logp = torch.log_softmax(logits[:, -1, :].float(), dim=-1)[:, targets.to(device)].cpu()
                for row, i in enumerate(chunk):
                    out[i] = logp[row].tolist()
                progress.advance(task, len(chunk))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            ids, mask, pos = left_pad([encoded[i] for i in chunk], pad_id, device)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1).logits
            logp = torch.log_softmax(logits[:, -1, :].float(), dim=-1)[:, targets.to(device)].cpu()
            for row, i in enumerate(chunk):
                out[i] = logp[row].tolist()
            progress.advance(task, len(chunk))
    return [o for o in out if o is not None]


def _prefix_groups(encoded: Sequence[Sequence[int]]) -> list[tuple[int, list[int]]]:
    """``(prefix length, member indices)`` of prompts sharing >= MIN_SHARED_PREFIX leading tokens (2+ members).

    Token ids, not text, are compared, so the shared part is exactly what each prompt would feed the model;
    every member keeps at least one token of its own (the one whose next-token distribution is read).

    >>> _prefix_groups([[1] * 70 + [2, 3], [1] * 70 + [4], [5] * 80, [1] * 70 + [2, 9]])
    [(70, [0, 3, 1])]
    """
    order = sorted(range(len(encoded)), key=lambda i: list(encoded[i]))
    groups: list[tuple[int, list[int]]] = []
    members: list[int] = []
    shared = 0
    for i in order:
        if members:
            common = _common_prefix(encoded[members[0]], encoded[i], shared)
            if min(common, len(encoded[i]) - 1) >= MIN_SHARED_PREFIX:
                shared = min(common, len(encoded[i]) - 1)
                members.append(i)
                continue
            if len(members) > 1:
                groups.append((shared, members))
        members, shared = [i], len(encoded[i]) - 1
    if len(members) > 1:
        groups.append((shared, members))
    return groups


def _common_prefix(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    n = 0
    for x, y in zip(a[:limit], b[:limit], strict=False):
        if x != y:
            break
        n += 1
    return n


def evaluate_questions(
    model,
    tokenizer,
    questions: Sequence[MCQuestion],
    *,
    shots_for: Callable[[int, MCQuestion], Sequence[MCQuestion]] | None = None,
    scoring: str = "letter",
    batch_size: int = 8,
    description: str = "multiple choice",
) -> MCResult:
    """Score every question (``shots_for(index, question)`` gives its solved examples) and grade the picks."""
    if scoring not in SCORINGS:
        raise DataError(f"unknown multiple-choice scoring '{scoring}'; use one of {', '.join(SCORINGS)}")
    shots = [shots_for(i, q) if shots_for else () for i, q in enumerate(questions)]
    if scoring == "cloze":
        scores = score_continuations(
            model,
            tokenizer,
            [cloze_prompt(q, s) for q, s in zip(questions, shots, strict=True)],
            [q.options for q in questions],
            batch_size=batch_size,
            description=description,
        )
        return grade(questions, per_character(questions, scores))
    prompts = [build_prompt(q, s) for q, s in zip(questions, shots, strict=True)]
    if scoring == "letter":
        n = max((len(q.options) for q in questions), default=4)
        scores = score_letters(  # k-shot prompts of one subject share their shots: computed once
            model,
            tokenizer,
            prompts,
            n_options=n,
            batch_size=batch_size,
            description=description,
            share_prefix=True,
        )
        scores = [s[: len(q.options)] for s, q in zip(scores, questions, strict=True)]
    else:
        scores = score_continuations(
            model,
            tokenizer,
            prompts,
            [q.options for q in questions],
            batch_size=batch_size,
            description=description,
        )
    return grade(questions, scores)


def per_character(questions: Sequence[MCQuestion], scores: Sequence[Sequence[float]]) -> list[list[float]]:
    """Log-likelihood per character of each option (lm-eval's ``acc_norm``): long options are not penalised
    for having more tokens to pay for.

    >>> per_character([MCQuestion("q", ["ab", "abcd"], 1)], [[-2.0, -3.0]])
    [[-1.0, -0.75]]
    """
    return [
        [x / max(len(opt.strip()), 1) for x, opt in zip(row, q.options, strict=True)]
        for row, q in zip(scores, questions, strict=True)
    ]


def grade(questions: Sequence[MCQuestion], scores: Sequence[Sequence[float]]) -> MCResult:
    """Pick the best-scored option per question; accuracy overall and per subject, and the chance level.

    >>> r = grade([MCQuestion("q", ["a", "b"], 1, "s")], [[-2.0, -0.1]])
    >>> r.accuracy, r.chance, r.correct
    (1.0, 0.5, [True])
    """
    picks = [max(range(len(s)), key=lambda j: s[j]) for s in scores]
    correct = [p == q.answer for q, p in zip(questions, picks, strict=True)]
    by_subject: dict[str, list[bool]] = defaultdict(list)
    for q, ok in zip(questions, correct, strict=True):
        by_subject[q.subject].append(ok)
    n = len(questions)
    return MCResult(
        accuracy=sum(correct) / n if n else 0.0,
        n=n,
        per_subject={k: sum(v) / len(v) for k, v in sorted(by_subject.items())},
        scores=[list(s) for s in scores],
        predictions=picks,
        correct=correct,
        chance=sum(1 / len(q.options) for q in questions) / n if n else 0.0,
    )
