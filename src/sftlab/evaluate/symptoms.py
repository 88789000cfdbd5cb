""" "The model got dumber": the signs practitioners check by hand, counted per answer and compared.

A fine-tuned model can keep its task score and still be damaged: it loops, never stops,
answers empty, refuses what it used to answer, switches language, or writes far longer or
shorter answers. Each answer gets a yes/no per symptom; rates carry a 95% interval, and a
gate compares the tuned model with the base on the SAME prompts (paired, McNemar), so a
rise is only called when the prompts can show it.

>>> flags = answer_symptoms("Why is the sky blue?", "", new_tokens=0, max_new_tokens=64)
>>> flags["empty"], flags["never_stops"], flags["wrong_language"]
(True, False, None)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any

from sftlab.curate.steps.filters_repetition import line_repeat_ratio, tandem_copies
from sftlab.curate.steps.text import dominant_script, words
from sftlab.evaluate.retention import retention_gate
from sftlab.evaluate.stats import wilson_interval

SYMPTOMS = ("looping", "never_stops", "empty", "refusal", "wrong_language")
"""Yes/no signs per answer; ``wrong_language`` is None (not judged) when either text is too short to tell."""

LOOP_COPIES = 3
"""A span of two or more distinct words written this many times back to back is a loop."""
SAME_WORD_RUN = 8
"""One word written this many times in a row is a loop too ("yes yes yes …"); digits are not (tables of zeros)."""
MIN_LANGUAGE_WORDS = 4
"""Prompt and answer each need this many words before their languages are compared."""
MIN_LANGUAGE_CONFIDENCE = 0.9

REFUSAL_OPENINGS = [
    r"^\W*(?:i'?m|i am) (?:very |really |so |truly )?sorry,? (?:but )?(?:i|as an ai)",
    r"^\W*(?:i'?m|i am) (?:very |really |so |truly )?sorry\b[^.!?\n]{0,60}\bbut\b",  # "I'm sorry for any confusion, but"
    r"^\W*i'?m afraid (?:that'?s not possible|i (?:can(?:'|no)?t|cannot|won'?t|am unable|'m unable|am not able))",
    r"\bi(?:'m| am) not (?:equipped|able|designed|programmed|permitted|allowed) to\b",
    r"\bi (?:don'?t|do not) have the (?:ability|capability|capacity|means) to\b",
    r"^\W*i (?:can(?:'|no)?t|cannot|won'?t|will not|must decline|am unable|'m unable|am not able|'m not able)\b",
    r"^\W*(?:sorry|unfortunately),? (?:but )?i (?:can(?:'|no)?t|cannot|won'?t|am unable|'m unable)\b",
    r"\b(?:i|we) (?:can(?:'|no)?t|cannot|won'?t|will not) (?:help|assist|provide|comply|fulfill|support|do) "
    r"(?:you )?(?:with )?(?:that|this|your request|such)",
    r"\bi(?:'m| am) (?:unable|not able|not allowed|not permitted) to (?:help|assist|provide|comply|fulfill)\b",
    r"\b(?:it is|it's) (?:not appropriate|illegal|unethical|against my)\b.{0,40}\b(?:to|for me)\b",
    r"^\W*(?:抱歉|对不起|很抱歉)[，,]?\s*我(?:无法|不能|没办法)",
]
"""Where an answer declines, judged on its first 300 characters (model answers, not training data: a
refusal that goes on to help is still a refusal in the sense users notice)."""


@cache
def _refusal_patterns() -> list[re.Pattern]:
    return [re.compile(p, re.IGNORECASE) for p in REFUSAL_OPENINGS]


def is_refusal(answer: str) -> bool:
    """Whether ``answer`` declines the request (checked on its opening, where refusals sit).

    >>> is_refusal("I'm sorry, but I can't help with that."), is_refusal("Sure! Here is the plan.")
    (True, False)
    """
    head = answer.strip()[:300]
    return any(p.search(head) for p in _refusal_patterns())


def is_looping(answer: str) -> bool:
    """A span of two or more distinct words written :data:`LOOP_COPIES` times in a row, one word
    :data:`SAME_WORD_RUN` times in a row, or most lines repeated.

    >>> is_looping("The answer is 4. The answer is 4. The answer is 4. The answer is 4.")
    True
    >>> is_looping("First, boil water. Then add the pasta and stir.")
    False
    """
    tokens = words(answer)
    if len(tokens) < 6:
        return False
    if tandem_copies(tokens) >= LOOP_COPIES or line_repeat_ratio(answer) > 0.5:
        return True
    run = 1
    for prev, word in zip(tokens, tokens[1:], strict=False):
        run = run + 1 if word == prev and not word.isdigit() else 1
        if run >= SAME_WORD_RUN:
            return True
    return False


def language_of(text: str) -> str | None:
    """The language of ``text`` (``en``, ``zh``…) or None when it is too short or unsure to say.

    Scripts first (a Chinese answer to an English prompt needs no statistics), then ``langdetect``
    with a fixed seed for texts in one script.
    """
    if len(words(text)) < MIN_LANGUAGE_WORDS:
        return None
    script = dominant_script(text)
    if script not in (None, "latin"):
        return f"script:{script}"
    from langdetect import DetectorFactory, LangDetectException, detect_langs

    DetectorFactory.seed = 0
    try:
        best = detect_langs(text)[0]
    except LangDetectException:
        return None
    if best.prob < MIN_LANGUAGE_CONFIDENCE:
        return None
    return best.lang.split("-")[0]


def answer_symptoms(
    prompt: str, answer: str, *, new_tokens: int, max_new_tokens: int
) -> dict[str, bool | None]:
    """The yes/no symptoms of one answer to ``prompt`` (the last user turn)."""
    text = answer.strip()
    prompt_lang = language_of(prompt)
    answer_lang = language_of(text) if prompt_lang else None
    wrong = None if prompt_lang is None or answer_lang is None else prompt_lang != answer_lang
    return {
        "looping": is_looping(text),
        "never_stops": new_tokens >= max_new_tokens,
        "empty": not text,
        "refusal": is_refusal(text),
        "wrong_language": wrong,
    }


def summarise(flags: Sequence[dict[str, bool | None]], lengths: Sequence[int]) -> dict[str, Any]:
    """Rates with 95% intervals (over the answers each symptom could be judged on) and output lengths."""
    out: dict[str, Any] = {"n": len(flags)}
    for name in SYMPTOMS:
        judged = [f[name] for f in flags if f[name] is not None]
        hits = sum(1 for v in judged if v)
        out[name] = {
            "rate": hits / len(judged) if judged else None,
            "ci95": list(wilson_interval(hits, len(judged))) if judged else None,
            "count": hits,
            "judged": len(judged),
        }
    ordered = sorted(lengths)
    out["mean_tokens"] = sum(ordered) / len(ordered) if ordered else None
    out["p95_tokens"] = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else None
    return out


def symptom_gates(
    base: Sequence[dict[str, bool | None]],
    tuned: Sequence[dict[str, bool | None]],
    gates: dict[str, float],
    *,
    action: str,
    alpha: float = 0.05,
    power: float = 0.8,
) -> dict[str, dict[str, Any]]:
    """For each gated symptom: has its rate risen above ``gates[name]`` (absolute share) on the same prompts?

    "Healthy" (symptom absent) plays the part of "answered right" in the retention gate's paired test,
    so a rise is a drop in health and "too small to tell" has the same meaning there.
    """
    out = {}
    for name, threshold in gates.items():
        pairs = [(b[name], t[name]) for b, t in zip(base, tuned, strict=True)]
        pairs = [(b, t) for b, t in pairs if b is not None and t is not None]
        verdict = retention_gate(
            [not b for b, _ in pairs],
            [not t for _, t in pairs],
            threshold=threshold,
            action=action,
            alpha=alpha,
            power=power,
        )
        rise = f"{name.replace('_', ' ')} {1 - verdict.tuned:.1%} vs base {1 - verdict.base:.1%} on {verdict.n} prompts"
        word = {"pass": "ok", "too small": "too small to tell"}.get(verdict.status, verdict.status)
        lo, hi = verdict.drop_ci95
        detail = f"rise {verdict.drop:+.1%} (95% CI {lo:+.1%} to {hi:+.1%}), allowed {threshold:.1%}"
        if verdict.status == "too small":
            detail += f"; these prompts detect rises of {verdict.detectable_drop:.1%} or more"
        out[name] = {
            "status": verdict.status,
            "rise": verdict.drop,
            "rise_ci95": [lo, hi],
            "p_value": verdict.p_value,
            "threshold": threshold,
            "message": f"{word}: {rise}, {detail}",
        }
    return out
