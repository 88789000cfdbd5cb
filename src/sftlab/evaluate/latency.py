"""Latency model of generation: t = k·x + b, with x the generated tokens.

``b`` is about the time to the first token (the prompt's forward pass and
set-up), ``k`` the time per further token, ``1/k`` the decode speed. R² says
how well a straight line explains the measurements; a low R² means noise (a
busy machine) or a non-linear cost (very long outputs on a slow attention).

>>> f = fit_line([1, 2, 3, 4], [1.5, 2.5, 3.5, 4.5])
>>> round(f.k, 6), round(f.b, 6), round(f.r2, 6)
(1.0, 0.5, 1.0)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sftlab.evaluate.generation import encode_chat, stop_ids


@dataclass
class LineFit:
    """Least-squares line ``y = k·x + b`` and its coefficient of determination."""

    k: float
    b: float
    r2: float


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> LineFit:
    """Ordinary least squares; R² = 1 − SS_res/SS_tot (1.0 when every y is equal and fitted exactly)."""
    n = len(xs)
    if n < 2 or len(set(xs)) < 2:
        raise ValueError("a line needs at least two distinct x values")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    k = sxy / sxx
    b = my - k * mx
    ss_res = sum((y - (k * x + b)) ** 2 for x, y in zip(xs, ys, strict=True))
    ss_tot = sum((y - my) ** 2 for y in ys)
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res < 1e-18 else 0.0)
    return LineFit(k=k, b=b, r2=r2)


@dataclass
class LatencyReport:
    """Measured points, the fitted line, decode speed and time to first token per prompt length."""

    points: list[tuple[int, float]]
    fit: LineFit
    tokens_per_s: float
    prompt_tokens: int
    ttft: list[tuple[int, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["k_s_per_token"] = self.fit.k
        d["b_s"] = self.fit.b
        d["r2"] = self.fit.r2
        return d


def _timed_generate(model, ids, n_tokens: int, pad_id: int, repeats: int) -> float:
    """Fastest of ``repeats`` runs generating exactly ``n_tokens`` (EOS suppressed by ``min_new_tokens``)."""
    import torch

    best = float("inf")
    for _ in range(repeats):
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
        best = min(best, time.perf_counter() - start)
    return best


def measure_latency(
    model,
    tokenizer,
    messages: list[dict[str, Any]],
    *,
    token_counts: Sequence[int] = (4, 8, 16, 32),
    prompt_lengths: Sequence[int] = (16, 64, 256),
    repeats: int = 2,
) -> LatencyReport:
    """Time greedy generation of each of ``token_counts`` for one prompt, fit the line, then TTFT per prompt length."""
    import torch

    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids(model, tokenizer)[0]
    model.eval()
    ids = torch.tensor([encode_chat(tokenizer, messages)], device=device)
    _timed_generate(model, ids, 2, pad_id, 1)  # warm-up: first calls pay for allocations and kernel choice
    points = [(n, _timed_generate(model, ids, n, pad_id, repeats)) for n in sorted(set(token_counts))]
    fit = fit_line([p[0] for p in points], [p[1] for p in points])
    filler = tokenizer(" the quick brown fox jumps over the lazy dog", add_special_tokens=False).input_ids
    ttft = []
    for length in sorted(set(prompt_lengths)):
        prompt = (filler * (length // len(filler) + 1))[:length]
        ttft.append(
            (length, _timed_generate(model, torch.tensor([prompt], device=device), 1, pad_id, repeats))
        )
    return LatencyReport(
        points=points,
        fit=fit,
        tokens_per_s=1.0 / fit.k if fit.k > 0 else float("inf"),
        prompt_tokens=int(ids.shape[1]),
        ttft=ttft,
    )
