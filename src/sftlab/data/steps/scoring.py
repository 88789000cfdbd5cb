"""The ``score`` step: cheap heuristics, model perplexity and IFD, and LLM-judge ratings per record.

Scores go into ``record.meta.extra["scores"]`` (name → float) so that later
steps (``exact_dedup keep: best_score``, ``select``) and the curation report
read them instead of recomputing. The step keeps everything unless a threshold
is set: ``min_score`` → ``low_score``, ``max_ifd`` → ``high_ifd``,
``max_perplexity`` → ``high_perplexity``. A record without a given score
(no answer, judge failure) is never dropped for it.

Score names written:

=================  ==========================================================
``heuristic``      √length × mean(diversity, format), in [0, 1] (:func:`heuristic_scores`)
``length``         answer length, log-scaled, 1 at ≥ 200 words
``diversity``      moving-average type-token ratio of the answer
``format``         share of formatting checks passed
``perplexity``     exp(mean NLL of the answer tokens given the prompt)
``ifd``            loss(answer | prompt) / loss(answer alone) (:func:`answer_losses`)
``judge_<aspect>`` the LLM judge's 1-10 rating (``judge_quality``, ``judge_complexity``)
=================  ==========================================================

IFD (instruction-following difficulty, the "cherry data" method): if the
instruction makes the answer no easier to predict (IFD near or above 1), the
pair teaches little about following instructions — or the answer does not fit
the instruction at all.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sftlab.data.record import Conversation, Record
from sftlab.data.steps.base import Decision, GlobalStep
from sftlab.errors import RecipeError
from sftlab.utils.progress import track

DEFAULT_MODEL = "smollm2-135m-instruct"

# ── heuristics ──────────────────────────────────────────────────────────────

_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]|[^\W_]+", re.UNICODE)
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+\S", re.MULTILINE)
_HEADER = re.compile(r"^\s*#{1,6}\s+\S", re.MULTILINE)
LENGTH_TARGET_WORDS = 200
DIVERSITY_WINDOW = 50


def answer_text(record: Record) -> str:
    """What the model is trained to write: every assistant turn (reasoning and content), or the text."""
    if not isinstance(record, Conversation):
        return record.text
    parts = []
    for turn in record.turns:
        if turn.role == "assistant":
            parts += [p for p in (turn.reasoning, turn.content) if p]
            parts += [f"{c.name}({c.arguments_json()})" for c in turn.tool_calls]
    return "\n\n".join(parts)


def words(text: str) -> list[str]:
    """Lower-cased words; each CJK character counts as one.

    >>> words("Hello, World! 你好")
    ['hello', 'world', '你', '好']
    """
    return [w.lower() for w in _WORD.findall(text)]


def moving_ttr(tokens: list[str], window: int = DIVERSITY_WINDOW) -> float:
    """Mean type-token ratio over sliding windows (MATTR): unlike plain TTR, it does not fall with length.

    >>> moving_ttr("a b c d".split()), moving_ttr("a a a a".split())
    (1.0, 0.25)
    """
    if not tokens:
        return 0.0
    if len(tokens) <= window:
        return len(set(tokens)) / len(tokens)
    counts = Counter(tokens[:window])
    total = len(counts)
    for i in range(window, len(tokens)):
        counts[tokens[i]] += 1
        old = tokens[i - window]
        counts[old] -= 1
        if counts[old] == 0:
            del counts[old]
        total += len(counts)
    return total / ((len(tokens) - window + 1) * window)


def format_checks(text: str, n_words: int) -> dict[str, bool]:
    """Formatting signals of a good answer; the ``format`` score is the share that pass."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    long_lines = [ln for ln in lines if len(ln) > 20]
    stripped = text.rstrip()
    return {
        # an unclosed ``` fence usually means a truncated answer
        "balanced_fences": text.count("```") % 2 == 0,
        # copy-paste or generation loops repeat whole lines
        "no_repeated_lines": len(set(long_lines)) == len(long_lines),
        # answers cut mid-sentence end in a letter or comma, not . ! ? ) ``` etc.
        "clean_ending": not stripped or stripped[-1] in ".!?。！？)]}\"'`*>:;" or n_words <= 8,
        # long answers read better with lists, headers, code or paragraphs
        "structured": n_words < 80
        or bool(_LIST_ITEM.search(text) or _HEADER.search(text) or "```" in text or "\n\n" in text.strip()),
    }


def heuristic_scores(record: Record) -> dict[str, float]:
    """``length``, ``diversity``, ``format`` and ``heuristic`` = √length × mean(diversity, format), all in [0, 1].

    Cheap and model-free; it prefers substantive, varied, well-formed answers and
    so under-rates correct one-word answers (classification labels) — use
    ``select.score`` with a model or judge score for such data.

    >>> s = heuristic_scores(Conversation(turns=[]))
    >>> s["heuristic"]
    0.0
    """
    text = answer_text(record)
    tokens = words(text)
    if not tokens:
        return {"length": 0.0, "diversity": 0.0, "format": 0.0, "heuristic": 0.0}
    checks = format_checks(text, len(tokens))
    parts = {
        "length": min(1.0, math.log1p(len(tokens)) / math.log1p(LENGTH_TARGET_WORDS)),
        "diversity": moving_ttr(tokens),
        "format": sum(checks.values()) / len(checks),
    }
    # Multiplicative in length: a two-word answer is trivially "diverse" and "well
    # formed", which must not make up for it saying almost nothing.
    parts["heuristic"] = math.sqrt(parts["length"]) * (parts["diversity"] + parts["format"]) / 2
    return {k: round(v, 4) for k, v in parts.items()}


# ── model-based: perplexity and IFD ─────────────────────────────────────────


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


def _forward_kwargs(model) -> set[str]:
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return set(inspect.signature(base.forward).parameters)


def mean_answer_nll(model, sequences: list[tuple[list[int], int]], *, batch_size: int = 8, pad_id: int = 0):
    """Mean negative log-likelihood of tokens ``ids[start:]`` of each ``(ids, start)``, batched.

    Sequences are sorted by length (less padding), right-padded and masked; only
    the logits of the answer window are computed (``logits_to_keep``) so memory
    stays at batch x answer x vocab, not batch x sequence x vocab.
    """
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    can_trim = "logits_to_keep" in _forward_kwargs(model)
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i][0]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    result: list[float] = [math.nan] * len(sequences)
    model.eval()
    with torch.inference_mode():
        for batch in track(batches, "perplexity"):
            width = max(len(sequences[i][0]) for i in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            targets = torch.full((len(batch), width), -100, dtype=torch.long)
            for row, i in enumerate(batch):
                seq, start = sequences[i]
                ids[row, : len(seq)] = torch.tensor(seq)
                mask[row, : len(seq)] = 1
                # position p predicts token p + 1: targets are shifted left by one
                targets[row, start - 1 : len(seq) - 1] = torch.tensor(seq[start:])
            first = min(sequences[i][1] for i in batch) - 1
            kwargs = {"logits_to_keep": width - first} if can_trim else {}
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs).logits
            window = targets[:, width - logits.shape[1] :].to(device)
            nll = F.cross_entropy(logits.float().transpose(1, 2), window, ignore_index=-100, reduction="none")
            counts = (window != -100).sum(1).clamp(min=1)
            for row, value in enumerate((nll.sum(1) / counts).tolist()):
                result[batch[row]] = value
    return result


def answer_losses(
    model, tokenizer, records: list[Record], *, batch_size: int = 8, max_length: int = 1024
) -> list[tuple[float | None, float | None]]:
    """``(loss given the prompt, loss of the answer alone)`` per record; ``None`` where not defined.

    Perplexity is ``exp`` of the first, IFD the ratio of the two.
    """
    pairs = [encode_pair(tokenizer, r, max_length) for r in records]
    sequences: list[tuple[list[int], int]] = []
    slots: list[tuple[int | None, int | None]] = []
    for pair in pairs:
        if pair is None:
            slots.append((None, None))
            continue
        cond = None
        if pair.prompt:
            cond = len(sequences)
            sequences.append((pair.prompt + pair.answer, len(pair.prompt)))
        bare = len(sequences)
        sequences.append((pair.bare + pair.answer, len(pair.bare)))
        slots.append((cond, bare))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    nll = mean_answer_nll(model, sequences, batch_size=batch_size, pad_id=pad)
    return [(None if c is None else nll[c], None if b is None else nll[b]) for c, b in slots]


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


# ── the step ────────────────────────────────────────────────────────────────


def _cfg(config: Any, key: str, default: Any = None) -> Any:
    return getattr(config, key, default) if config is not None else default


class ScoreStep(GlobalStep):
    """Write scores into ``meta.extra["scores"]``; drop only by the thresholds that are set.

    ``default_model`` is the model scored with when the config names none; the
    curation runner sets it to the recipe's ``model.name``. ``lm`` reuses a
    ``(model, tokenizer)`` pair that is already loaded instead.
    """

    name = "score"

    def __init__(self, config: Any = None, *, default_model: str = DEFAULT_MODEL, lm: tuple | None = None):
        super().__init__(_cfg(config, "action", "drop"))
        self.config = config
        self.default_model = default_model
        self.lm = lm
        signals = list(_cfg(config, "signals", ["heuristic", "perplexity", "ifd"]))
        # a threshold on a signal implies computing it
        if _cfg(config, "max_ifd") is not None and "ifd" not in signals:
            signals.append("ifd")
        if _cfg(config, "max_perplexity") is not None and "perplexity" not in signals:
            signals.append("perplexity")
        self.signals = signals

    def compute(self, records: list[Record]) -> list[dict[str, float | None]]:
        """All configured scores per record (without writing them)."""
        scores: list[dict[str, float | None]] = [{} for _ in records]
        if not records:  # nothing to score: do not load a model or call a judge
            return scores
        if "heuristic" in self.signals:
            for s, record in zip(scores, records, strict=True):
                s.update(heuristic_scores(record))
        if {"perplexity", "ifd"} & set(self.signals):
            losses = self._losses(records)
            for s, (cond, bare) in zip(scores, losses, strict=True):
                s.update({k: v for k, v in model_scores(cond, bare).items() if k in self.signals})
        judge_cfg = _cfg(self.config, "judge")
        if judge_cfg is not None:
            judge = _make_judge(judge_cfg)
            for s, rated in zip(scores, judge.score(records), strict=True):
                s.update(rated)
            self.details["judge"] = {"model": judge.model, **dict(judge.counts)}
        return scores

    def _losses(self, records: list[Record]):
        from sftlab.models import load_model, load_tokenizer

        if self.lm is not None:
            model, tokenizer = self.lm
        else:
            ref = _cfg(self.config, "model") or self.default_model
            tokenizer = load_tokenizer(ref)
            model = load_model(ref, dtype=_cfg(self.config, "dtype", "auto"))
            self.details["model"] = ref
        try:
            return answer_losses(
                model,
                tokenizer,
                records,
                batch_size=_cfg(self.config, "batch_size", 8),
                max_length=_cfg(self.config, "max_length", 1024),
            )
        finally:
            del model  # our reference only: a model we loaded is freed before the next step loads its own

    def decide(self, records: list[Record]) -> list[Decision]:
        computed = self.compute(records)
        min_score = _cfg(self.config, "min_score")
        key = _cfg(self.config, "score_key", "heuristic")
        max_ifd = _cfg(self.config, "max_ifd")
        max_ppl = _cfg(self.config, "max_perplexity")
        decisions = []
        for record, scores in zip(records, computed, strict=True):
            record.meta.extra.setdefault("scores", {}).update(scores)
        if (
            min_score is not None
            and records
            and all(r.meta.extra["scores"].get(key) is None for r in records)
        ):
            known = sorted({k for r in records for k in r.meta.extra["scores"]})
            raise RecipeError(
                [
                    f"score.score_key '{key}' has no value on any record; known scores: {', '.join(known) or 'none'}"
                ],
                source="curation.steps",
            )
        for record in records:
            scores = record.meta.extra["scores"]
            reason = detail = None
            value = scores.get(key)
            if min_score is not None and value is not None and value < min_score:
                reason, detail = "low_score", f"{key}={value:.3g} < {min_score}"
            elif max_ifd is not None and scores.get("ifd") is not None and scores["ifd"] >= max_ifd:
                reason, detail = "high_ifd", f"ifd={scores['ifd']:.3g} >= {max_ifd}"
            elif (
                max_ppl is not None
                and scores.get("perplexity") is not None
                and scores["perplexity"] > max_ppl
            ):
                reason, detail = "high_perplexity", f"perplexity={scores['perplexity']:.4g} > {max_ppl}"
            decisions.append(Decision(record, reason, detail))
        self.details["score_summary"] = _summary(computed)
        return decisions


def _make_judge(cfg: Any):
    from sftlab.data.judge import Judge

    fields = ("api_key_env", "aspects", "prompt_files", "max_workers", "temperature", "max_tokens", "timeout")
    kwargs = {k: getattr(cfg, k) for k in fields if getattr(cfg, k, None) is not None}
    if hasattr(cfg, "api_key_env"):
        kwargs["api_key_env"] = cfg.api_key_env  # null is meaningful: no key needed
    return Judge(base_url=cfg.base_url, model=cfg.model, **kwargs)


def _summary(computed: list[dict[str, float | None]]) -> dict[str, dict[str, float | None]]:
    """Per score: count, mean, min, max and missing — the report's score table."""
    names = sorted({k for s in computed for k in s})
    out = {}
    for name in names:
        values = [s[name] for s in computed if s.get(name) is not None]
        out[name] = {
            "count": len(values),
            "missing": len(computed) - len(values),
            "mean": round(sum(values) / len(values), 4) if values else None,
            "min": min(values) if values else None,
            "max": max(values) if values else None,
        }
    return out
