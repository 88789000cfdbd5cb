"""How ``select`` ranks records: a score expression, or ``auto`` — every signal that was computed, in one score.

``select.score: auto`` (the default) combines the signals present in
``meta.extra["scores"]`` as the mean of their percentile ranks over the pool,
each oriented so that higher is better:

================  ==========================================================
``heuristic``      higher is better (length × diversity × format, prose only)
``ifd``            higher is better below 1 (the instruction helps, and the
                   answer is not trivial to predict); IFD >= 1 ranks last —
                   the Cherry-LLM rule
``judge_quality``  higher is better
``judge_complexity`` higher is better (DEITA ranks by quality × complexity)
================  ==========================================================

Raw ``perplexity`` is left out on purpose: it is high for code, maths and other
languages simply because they are harder to predict, which is the domain bias
selection must not have; IFD divides it by the answer's own difficulty. A record
missing a signal is ranked on the ones it has. Ranks instead of raw values make
signals with different scales (0-1, 1-10, ratios) count equally, and ranks are
taken within each domain (code, maths, prose, other): a signal's scale differs
by domain (code repeats its words, so its lexical diversity is low), and a
code answer should compete with code answers, not with essays.

>>> combined_scores([{"heuristic": 0.9, "ifd": 0.5}, {"heuristic": 0.2, "ifd": 0.8}, {"heuristic": 0.5, "ifd": 1.3}])
[0.75, 0.5, 0.25]
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable

import numpy as np

from sftlab.errors import RecipeError

AUTO = "auto"
SIGNALS = ("heuristic", "ifd", "judge_quality", "judge_complexity")

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def _oriented(name: str, value: float) -> float:
    if name == "ifd":
        return value if value < 1.0 else -1.0  # IFD >= 1: the instruction does not help
    return value


def percentile_ranks(values: list[float]) -> list[float]:
    """Rank of each value in [0, 1] (ties share their mean rank; one value ranks 0.5).

    >>> percentile_ranks([3.0, 1.0, 3.0, 2.0])
    [0.8333, 0.0, 0.8333, 0.3333]
    """
    if len(values) == 1:
        return [0.5]
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values), dtype=float)
    arr = np.asarray(values)
    for v in np.unique(arr):  # ties: mean rank
        same = arr == v
        ranks[same] = ranks[same].mean()
    return [round(float(r) / (len(values) - 1), 4) for r in ranks]


def combined_scores(
    scores: list[dict[str, float | None]], groups: list[str] | None = None
) -> list[float | None]:
    """The ``auto`` score per record: mean percentile rank over the signals it has; ``None`` with none.

    With ``groups`` (the records' domains) each record is ranked among its own
    group: a code answer against code answers, prose against prose.
    """
    groups = groups or [""] * len(scores)
    sums = [0.0] * len(scores)
    counts = [0] * len(scores)
    for name in SIGNALS:
        for group in sorted(set(groups)):
            have = [i for i, s in enumerate(scores) if s.get(name) is not None and groups[i] == group]
            if not have:
                continue
            ranks = percentile_ranks([_oriented(name, float(scores[i][name])) for i in have])
            for i, r in zip(have, ranks, strict=True):
                sums[i] += r
                counts[i] += 1
    return [round(s / c, 4) if c else None for s, c in zip(sums, counts, strict=True)]


def score_function(expression: str) -> Callable[[dict[str, float]], float | None]:
    """Compile a score name or arithmetic over score names; ``None`` when a score it uses is missing.

    >>> f = score_function("judge_quality * judge_complexity")
    >>> f({"judge_quality": 8, "judge_complexity": 5}), f({"judge_quality": 8})
    (40, None)
    >>> score_function("-ifd")({"ifd": 0.7})
    -0.7
    >>> score_function("__import__('os')")
    Traceback (most recent call last):
    ...
    sftlab.errors.RecipeError: curation.steps: select.score: 'Call' is not allowed in '__import__('os')'; use score names, numbers, + - * / and parentheses
    """
    try:
        tree = ast.parse(expression, mode="eval").body
    except SyntaxError:
        raise RecipeError([f"select.score: cannot parse '{expression}'"], source="curation.steps") from None
    allowed = (ast.BinOp, ast.UnaryOp, ast.Name, ast.Constant, ast.Load, ast.operator, ast.unaryop)
    for node in ast.walk(tree):
        bad = not isinstance(node, allowed)
        bad = bad or (isinstance(node, ast.BinOp) and type(node.op) not in _BINARY)
        bad = bad or (isinstance(node, ast.UnaryOp) and type(node.op) not in _UNARY)
        bad = bad or (isinstance(node, ast.Constant) and not isinstance(node.value, int | float))
        if bad:
            raise RecipeError(
                [
                    f"select.score: '{type(node).__name__}' is not allowed in '{expression}'; "
                    "use score names, numbers, + - * / and parentheses"
                ],
                source="curation.steps",
            )

    def evaluate(node: ast.AST, scores: dict[str, float]) -> float | None:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return scores.get(node.id)
        if isinstance(node, ast.UnaryOp):
            inner = evaluate(node.operand, scores)
            return None if inner is None else _UNARY[type(node.op)](inner)
        left, right = evaluate(node.left, scores), evaluate(node.right, scores)
        if left is None or right is None:
            return None
        try:
            return _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            return None

    return lambda scores: evaluate(tree, scores)


def rank_values(
    expression: str, scores: list[dict[str, float]], groups: list[str] | None = None
) -> list[float | None]:
    """Each record's ranking value under ``expression`` (``auto``, ranked within ``groups``, or an expression)."""
    if expression == AUTO:
        return combined_scores(scores, groups)
    f = score_function(expression)
    return [f(s) for s in scores]
