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
``ifd``            loss(answer | prompt) / loss(answer alone)
                   (:func:`~sftlab.curate.steps.perplexity.answer_losses`)
``judge_<aspect>`` the LLM judge's 1-10 rating (``judge_quality``, ``judge_complexity``)
=================  ==========================================================

Which answer tokens are scored is explicit: ``turns: last`` (default) the last
assistant turn, ``turns: all`` every token training learns (all assistant
turns); the step's details record the choice. Sequences are packed like
training's (:mod:`sftlab.curate.steps.losses`) unless the model cannot take
``position_ids``.

IFD (instruction-following difficulty, the "cherry data" method): if the
instruction makes the answer no easier to predict (IFD near or above 1), the
pair teaches little about following instructions — or the answer does not fit
the instruction at all.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

from sftlab.curate.steps.base import Decision, GlobalStep
from sftlab.curate.steps.losses import supports_packing
from sftlab.curate.steps.perplexity import answer_losses, model_scores
from sftlab.curate.steps.text import prose_only
from sftlab.data.record import Conversation, Record
from sftlab.errors import RecipeError

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
    prose_lines = [ln.strip() for ln in prose_only(text).splitlines() if len(ln.strip()) > 20]
    stripped = text.rstrip()
    return {
        # an unclosed ``` fence usually means a truncated answer
        "balanced_fences": text.count("```") % 2 == 0,
        # copy-paste or generation loops repeat whole lines (code repeats lines legitimately: prose only)
        "no_repeated_lines": len(set(prose_lines)) == len(prose_lines),
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
            turns = _cfg(self.config, "turns", "last")
            packed = _cfg(self.config, "packed", True) and supports_packing(model)
            self.details["model_scoring"] = {"turns": turns, "packed": packed}
            return answer_losses(
                model,
                tokenizer,
                records,
                batch_size=_cfg(self.config, "batch_size", 8),
                max_length=_cfg(self.config, "max_length", 1024),
                turns=turns,
                packed=packed,
                ifd="ifd" in self.signals,
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
    from sftlab.curate.judge import Judge

    fields = (
        "api_key_env",
        "aspects",
        "prompt_files",
        "max_workers",
        "temperature",
        "max_tokens",
        "timeout",
        "cache",
    )
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
