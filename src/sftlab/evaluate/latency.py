"""Latency model of generation: t = k·x + b, with x the generated tokens, measured so it can be trusted.

``b`` is about the time to the first token (the prompt's forward pass and set-up), ``k`` the
time per further token, ``1/k`` the decode speed. What makes the numbers trustworthy:

- warm-up generations before any timing (first calls pay for allocation and kernel choice);
- several output lengths (5 by default) and prompt lengths, each timed ``repeats`` times, the
  median kept and the spread reported — a point whose repeats disagree by more than
  ``max_spread`` of their median is flagged (a busy machine);
- all models measured in ONE pass, interleaved point by point with the order rotating, so a
  burst of load on the machine hits every model alike instead of one model's whole curve;
- R² only from 3 points or more (a line through two points always fits).

>>> f = fit_line([1, 2, 3, 4], [1.5, 2.5, 3.5, 4.5])
>>> round(f.k, 6), round(f.b, 6), round(f.r2, 6)
(1.0, 0.5, 1.0)
>>> fit_line([1, 2], [1.0, 3.0]).r2 is None
True
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sftlab.evaluate.generation import encode_chat, stop_ids

FILLER = " the quick brown fox jumps over the lazy dog"


@dataclass
class LineFit:
    """Least-squares line ``y = k·x + b``; ``r2`` is ``None`` below three points."""

    k: float
    b: float
    r2: float | None


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> LineFit:
    """Ordinary least squares; R² = 1 − SS_res/SS_tot (1.0 when every y is equal and fitted exactly)."""
    n = len(xs)
    if n < 2 or len(set(xs)) < 2:
        raise ValueError("a line needs at least two distinct x values")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    k = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    b = my - k * mx
    if len(set(xs)) < 3:
        return LineFit(k=k, b=b, r2=None)
    ss_res = sum((y - (k * x + b)) ** 2 for x, y in zip(xs, ys, strict=True))
    ss_tot = sum((y - my) ** 2 for y in ys)
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res < 1e-18 else 0.0)
    return LineFit(k=k, b=b, r2=r2)


@dataclass
class Point:
    """One x (tokens) timed ``len(times)`` times: the median counts, (max − min)/median is its spread."""

    x: int
    times: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def spread(self) -> float:
        return (max(self.times) - min(self.times)) / self.median if self.median > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x, "median_s": self.median, "min_s": min(self.times), "max_s": max(self.times)}


@dataclass
class LatencyReport:
    """Generation time against output tokens (fit on medians), TTFT against prompt tokens, and their spread."""

    points: list[Point]
    ttft: list[Point]
    prompt_tokens: int
    max_spread: float
    warnings: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    """Threads, cores and load average around the measurement: what a reader needs to judge the numbers."""

    @property
    def fit(self) -> LineFit:
        return fit_line([p.x for p in self.points], [p.median for p in self.points])

    @property
    def tokens_per_s(self) -> float:
        return 1.0 / self.fit.k if self.fit.k > 0 else float("inf")

    def tokens_per_s_range(self) -> tuple[float, float]:
        """Decode speed of the slowest and fastest repeat (a line fitted per repeat)."""
        speeds = []
        for r in range(min(len(p.times) for p in self.points)):
            fit = fit_line([p.x for p in self.points], [p.times[r] for p in self.points])
            speeds.append(1.0 / fit.k if fit.k > 0 else float("inf"))
        return min(speeds), max(speeds)

    def to_dict(self) -> dict[str, Any]:
        fit = self.fit
        ttft_fit = (
            fit_line([p.x for p in self.ttft], [p.median for p in self.ttft]) if len(self.ttft) > 1 else None
        )
        worst = max((p.spread for p in self.points + self.ttft), default=0.0)
        return {
            "points": [p.to_dict() for p in self.points],
            "k_s_per_token": fit.k,
            "b_s": fit.b,
            "r2": fit.r2,
            "tokens_per_s": self.tokens_per_s,
            "tokens_per_s_range": list(self.tokens_per_s_range()),
            "prompt_tokens": self.prompt_tokens,
            "ttft": [p.to_dict() for p in self.ttft],
            "ttft_s_per_prompt_token": ttft_fit.k if ttft_fit else None,
            "ttft_r2": ttft_fit.r2 if ttft_fit else None,
            "repeats": min((len(p.times) for p in self.points), default=0),
            "max_spread_seen": worst,
            "warnings": self.warnings,
            "machine": self.machine,
        }


def _timed_generate(model, ids, n_tokens: int, pad_id: int) -> float:
    """Seconds to generate exactly ``n_tokens`` greedily (EOS suppressed by ``min_new_tokens``)."""
    import torch

    start = time.perf_counter()
    with torch.inference_mode():
        model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=n_tokens,
            min_new_tokens=n_tokens,
            do_sample=False,
            pad_token_id=pad_id,
            use_cache=True,
        )
    if ids.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


@dataclass
class _Subject:
    model: Any
    pad_id: int
    chat_ids: Any
    prompts: dict[int, Any]


def _subject(model, tokenizer, messages, prompt_lengths: Sequence[int]) -> _Subject:
    import torch

    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids(model, tokenizer)[0]
    filler = tokenizer(FILLER, add_special_tokens=False).input_ids
    prompts = {
        n: torch.tensor([(filler * (n // len(filler) + 1))[:n]], device=device)
        for n in sorted(set(prompt_lengths))
    }
    model.eval()
    return _Subject(model, pad_id, torch.tensor([encode_chat(tokenizer, messages)], device=device), prompts)


def measure_latency_many(
    models: dict[str, tuple[Any, Any]],
    messages: list[dict[str, Any]],
    *,
    token_counts: Sequence[int] = (8, 16, 32, 48, 64),
    prompt_lengths: Sequence[int] = (16, 64, 128, 256, 512),
    repeats: int = 3,
    warmup: int = 2,
    max_spread: float = 0.25,
) -> dict[str, LatencyReport]:
    """Latency of every ``label: (model, tokenizer)``, measured interleaved: per point, each model in turn."""
    subjects = {label: _subject(m, tok, messages, prompt_lengths) for label, (m, tok) in models.items()}
    load_before = _load()
    counts, lengths = sorted(set(token_counts)), sorted(set(prompt_lengths))
    for s in subjects.values():
        for _ in range(warmup):
            _timed_generate(s.model, s.chat_ids, counts[0], s.pad_id)
            _timed_generate(s.model, s.prompts[lengths[-1]], 1, s.pad_id)
    gen: dict[str, dict[int, list[float]]] = {label: {n: [] for n in counts} for label in subjects}
    first: dict[str, dict[int, list[float]]] = {label: {n: [] for n in lengths} for label in subjects}
    labels = list(subjects)
    turn = 0
    for _ in range(repeats):
        for n in counts:
            for label in _rotated(labels, turn):
                s = subjects[label]
                gen[label][n].append(_timed_generate(s.model, s.chat_ids, n, s.pad_id))
            turn += 1
        for n in lengths:
            for label in _rotated(labels, turn):
                s = subjects[label]
                first[label][n].append(_timed_generate(s.model, s.prompts[n], 1, s.pad_id))
            turn += 1
    machine = _machine(load_before, _load())
    out = {}
    for label, s in subjects.items():
        points = [Point(n, gen[label][n]) for n in counts]
        ttft = [Point(n, first[label][n]) for n in lengths]
        out[label] = LatencyReport(points, ttft, int(s.chat_ids.shape[1]), max_spread, machine=machine)
        out[label].warnings = _warnings(out[label], repeats, max_spread)
    return out


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return None


def _machine(before: float | None, after: float | None) -> dict[str, Any]:
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return {
        "torch_threads": torch.get_num_threads(),
        "cores": cores,
        "load_before": before,
        "load_after": after,
    }


def measure_latency(model, tokenizer, messages: list[dict[str, Any]], **kwargs: Any) -> LatencyReport:
    """One model's latency (see :func:`measure_latency_many`)."""
    return measure_latency_many({"model": (model, tokenizer)}, messages, **kwargs)["model"]


def _rotated(labels: list[str], turn: int) -> list[str]:
    """Each point starts with the next model, so none is always first after a pause."""
    k = turn % len(labels)
    return labels[k:] + labels[:k]


def _warnings(rep: LatencyReport, repeats: int, max_spread: float) -> list[str]:
    """What makes this curve less than trustworthy, one line each."""
    out = []
    noisy = [p for p in rep.points if p.spread > max_spread]
    noisy_ttft = [p for p in rep.ttft if p.spread > max_spread]
    if noisy or noisy_ttft:
        worst = max(p.spread for p in noisy + noisy_ttft)
        out.append(
            f"repeats disagree by up to {worst:.0%} of their median (allowed {max_spread:.0%}) at "
            + ", ".join([f"{p.x} tokens" for p in noisy] + [f"prompt {p.x}" for p in noisy_ttft])
            + ": the machine was busy; measure again on an idle machine"
        )
    if repeats < 3:
        out.append(f"{repeats} repeat(s) per point: no median against outliers (use latency.repeats >= 3)")
    if len(rep.points) < 5:
        out.append(f"{len(rep.points)} output lengths: too few for a trustworthy fit (use 5 or more)")
    m = rep.machine
    load = max((x for x in (m.get("load_before"), m.get("load_after")) if x is not None), default=None)
    if load is not None and m.get("cores") and load > m["cores"] + 0.5:
        out.append(
            f"load average {load:.1f} on {m['cores']} cores: other processes competed for the CPU, and "
            f"torch's {m['torch_threads']} threads stall whenever one of them loses its core (10x slower "
            "at times); compare models only within this interleaved pass"
        )
    fit = rep.fit
    if fit.r2 is not None and fit.r2 < 0.95:
        out.append(
            f"R² {fit.r2:.3f}: time is far from linear in the tokens generated (noise or slow attention)"
        )
    return out
