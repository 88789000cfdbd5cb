"""The token sequences that perplexity and IFD score, rendered the way training will see them.

``turns: last`` — :func:`encode_pair`: the last assistant turn after its
conversation (conditional) and after the bare template (IFD's denominator).
``turns: all`` — :func:`conversation_sequences`: the conversation rendered as
training renders it (:func:`~sftlab.render.render_samples`), every trained
token scored, and each answer run again after the bare template.
:func:`answer_losses` turns them into per-record losses
(:mod:`sftlab.curate.steps.losses`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sftlab.curate.steps.losses import Sequence_, packed_losses, padded_losses, supports_packing
from sftlab.data.record import Conversation, Record
from sftlab.render.labels import IGNORE_INDEX


def _hf_messages(conv: Conversation) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": conv.system}] if conv.system else []
    for turn in conv.turns:
        msg: dict[str, Any] = {"role": turn.role, "content": turn.content}
        if turn.tool_calls:
            msg["tool_calls"] = [
                {"type": "function", "id": c.id, "function": {"name": c.name, "arguments": c.arguments}}
                for c in turn.tool_calls
            ]
        if turn.tool_call_id:
            msg["tool_call_id"] = turn.tool_call_id
        messages.append(msg)
    return messages


def _render(tokenizer, messages: list[dict[str, Any]], tools=None) -> tuple[str, str]:
    """(prompt text ending in the generation prompt, answer text) for the last assistant turn."""
    prompt = tokenizer.apply_chat_template(
        messages[:-1], tools=tools, add_generation_prompt=True, tokenize=False
    )
    full = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template renders the prompt differently inside the full conversation")
    return prompt, full[len(prompt) :].rstrip()


@dataclass
class _Pair:
    """Token ids of one record: its context, the unconditional context, and the answer."""

    prompt: list[int]
    bare: list[int]
    answer: list[int]


def encode_pair(tokenizer, record: Record, max_length: int = 1024) -> _Pair | None:
    """Split a record into context and answer tokens, rendered the way training will see them.

    The answer is the last assistant turn (its template tokens included, e.g.
    ``<|im_end|>``); the context is everything before it plus the generation
    prompt. The *bare* context is the same template with an empty user turn —
    identical role headers and default system prompt, no instruction — so the
    IFD ratio isolates what the instruction itself contributes. A text record
    has only the bare context (IFD undefined). ``None`` when there is no answer.
    """
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    # a token to predict the first answer token from when there is no context
    start = [t for t in (tokenizer.bos_token_id, tokenizer.eos_token_id) if t is not None][:1]
    if not isinstance(record, Conversation):
        prompt_ids, bare_ids, answer_ids = [], start or encode("\n"), encode(record.text)
    else:
        last = max((i for i, t in enumerate(record.turns) if t.role == "assistant"), default=None)
        if last is None:
            return None
        record = Conversation(record.turns[: last + 1], record.system, record.tools, record.meta)
        rendered = _render_conversation(tokenizer, record)
        if rendered is None:  # no chat template (a base model): plain text
            prompt_ids = start + encode(record.prompt_text() + "\n\n")
            bare_ids, answer_ids = start or encode("\n"), encode(record.turns[-1].content)
        else:
            prompt, bare, answer = rendered
            prompt_ids, bare_ids, answer_ids = encode(prompt), encode(bare), encode(answer)
    if not answer_ids:
        return None
    # Long records: keep the answer (up to half the window) and the end of the prompt.
    budget = max_length - max(len(prompt_ids), len(bare_ids))
    answer_ids = answer_ids[: max(budget, max_length // 2)]
    keep = max_length - len(answer_ids)
    return _Pair(prompt=prompt_ids[-keep:] if prompt_ids else [], bare=bare_ids[-keep:], answer=answer_ids)


def _render_conversation(tokenizer, conv: Conversation) -> tuple[str, str, str] | None:
    """(prompt, bare prompt, answer) texts via the chat template; ``None`` without a usable template."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    messages = _hf_messages(conv)
    try:
        prompt, answer = _render(tokenizer, messages, conv.tools)
        bare = tokenizer.apply_chat_template(
            [{"role": "user", "content": ""}], add_generation_prompt=True, tokenize=False
        )
    except Exception:  # a template that rejects this shape (tools, roles): score as plain text
        return None
    return prompt, bare, answer


def _bare_ids(tokenizer) -> list[int]:
    """The template's scaffolding around an empty user turn (what IFD's unconditioned loss starts from)."""
    start = [t for t in (tokenizer.bos_token_id, tokenizer.eos_token_id) if t is not None][:1]
    if getattr(tokenizer, "chat_template", None):
        try:
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": ""}], add_generation_prompt=True, tokenize=False
            )
            return tokenizer(text, add_special_tokens=False)["input_ids"]
        except Exception:  # a template that needs more than one user turn: fall back to a start token
            pass
    return start or tokenizer("\n", add_special_tokens=False)["input_ids"]


def _all_turn_sequences(tokenizer, records, max_length: int):
    """``turns: all``: per record, its training samples (conditional) and each answer run after the bare prompt."""
    bare = _bare_ids(tokenizer)
    seqs: list[Sequence_] = []
    slots: list[tuple[list[int], list[int]]] = []
    for record in records:
        if not isinstance(record, Conversation):
            more, slot = sequence_table([encode_pair(tokenizer, record, max_length)])
            slots.append(tuple([len(seqs) + k for k in part] for part in slot[0]))
            seqs += more
            continue
        cond_seqs, runs = conversation_sequences(tokenizer, record, max_length)
        cond = list(range(len(seqs), len(seqs) + len(cond_seqs)))
        seqs += cond_seqs
        bare_idx = []
        for run in runs:
            run = run[: max_length - len(bare)]
            bare_idx.append(len(seqs))
            seqs.append((bare + run, [False] * len(bare) + [True] * len(run)))
        slots.append((cond, bare_idx))
    return seqs, slots


def answer_losses(
    model,
    tokenizer,
    records: list[Record],
    *,
    batch_size: int = 8,
    max_length: int = 1024,
    turns: str = "last",
    packed: bool | None = None,
    ifd: bool = True,
) -> list[tuple[float | None, float | None]]:
    """``(loss given the prompt, loss of the answer alone)`` per record; ``None`` where not defined.

    Perplexity is ``exp`` of the first, IFD the ratio of the two. ``turns``:
    ``last`` scores the last assistant turn, ``all`` every trained token of the
    conversation (each turn alone after the bare prompt for the second loss);
    the losses are token means over those tokens. ``packed`` (default: when the
    model allows it) packs sequences into rows of ``max_length``
    (:func:`~sftlab.curate.steps.perplexity.packed_losses`), ``batch_size`` rows per
    forward; otherwise ``batch_size`` right-padded sequences per forward.
    ``ifd=False`` skips the answer-alone pass of records that have a prompt
    (half the work when only perplexity is wanted); their second loss is ``None``.
    """
    if turns == "all":
        seqs, slots = _all_turn_sequences(tokenizer, records, max_length)
    else:
        seqs, slots = sequence_table([encode_pair(tokenizer, r, max_length) for r in records])
    if not ifd:  # a record with a prompt keeps only its conditional sequences
        slots = [(cond, bare if not cond else []) for cond, bare in slots]
    wanted = sorted({i for cond, bare in slots for i in (*cond, *bare)})
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    if packed is None:
        packed = supports_packing(model)
    todo = [seqs[i] for i in wanted]
    if packed:
        width = max([max_length, *(len(ids) for ids, _ in todo)])
        done = packed_losses(model, todo, max_length=width, rows=batch_size, pad_id=pad)
    else:
        done = padded_losses(model, todo, batch_size=batch_size, pad_id=pad)
    sums = dict(zip(wanted, done, strict=True))

    def mean(indices: list[int]) -> float | None:
        total, n = sum(sums[i][0] for i in indices), sum(sums[i][1] for i in indices)
        return total / n if n else None  # no scored token (or not computed): undefined

    return [(mean(cond), mean(bare)) for cond, bare in slots]


def model_scores(cond: float | None, bare: float | None) -> dict[str, float]:
    """``perplexity`` and ``ifd`` from the two losses (a text record has only a perplexity).

    >>> model_scores(1.0, 2.0)
    {'perplexity': 2.7183, 'ifd': 0.5}
    >>> model_scores(None, 0.0)
    {'perplexity': 1.0}
    """
    if cond is None:
        return {} if bare is None else {"perplexity": round(math.exp(min(bare, 50.0)), 4)}
    out = {"perplexity": round(math.exp(min(cond, 50.0)), 4)}
    if bare is not None and bare > 0:
        out["ifd"] = round(cond / bare, 4)
    return out


def conversation_sequences(tokenizer, record, max_length: int) -> tuple[list[Sequence_], list[list[int]]]:
    """``turns: all``: the conversation's training samples (every trained token scored), and each trained run.

    The runs (contiguous trained tokens: one assistant turn and its end-of-turn)
    are what IFD scores again after the bare prompt. Longer samples keep their
    end (the last answer); ``([], [])`` when the record renders to nothing trainable.
    """
    from sftlab.render import render_samples
    from sftlab.render.errors import RenderError

    try:
        samples = render_samples(record, tokenizer)
    except RenderError:
        return [], []
    seqs: list[Sequence_] = []
    runs: list[list[int]] = []
    for sample in samples:
        ids, trained = (
            sample.input_ids[-max_length:],
            [x != IGNORE_INDEX for x in sample.labels[-max_length:]],
        )
        seqs.append((ids, trained))
        run: list[int] = []
        for token, t in zip(ids, trained, strict=True):
            if t:
                run.append(token)
            elif run:
                runs.append(run)
                run = []
        if run:
            runs.append(run)
    return seqs, runs


def sequence_table(pairs: list[Any]) -> tuple[list[Sequence_], list[tuple[list[int], list[int]]]]:
    """Sequences of ``turns: last`` pairs (:class:`~sftlab.curate.steps.scoring._Pair`) and, per record, the
    indices of its conditional and bare sequences."""
    seqs: list[Sequence_] = []
    slots: list[tuple[list[int], list[int]]] = []
    for pair in pairs:
        if pair is None:
            slots.append(([], []))
            continue
        cond: list[int] = []
        if pair.prompt:
            cond.append(len(seqs))
            seqs.append((pair.prompt + pair.answer, [False] * len(pair.prompt) + [True] * len(pair.answer)))
        bare = [len(seqs)]
        seqs.append((pair.bare + pair.answer, [False] * len(pair.bare) + [True] * len(pair.answer)))
        slots.append((cond, bare))
    return seqs, slots
