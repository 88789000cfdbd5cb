"""Log-probabilities of given text from an endpoint: multiple-choice benchmarks on a served model.

The legacy ``/v1/completions`` call with ``echo: true`` and ``logprobs`` returns the log-probability
of every prompt token (OpenAI's older models, vLLM, llama-cpp-python). Sending prompt + option and
summing the option's tokens gives exactly what local scoring computes; the option's tokens are those
that end after the prompt's last character (``text_offset``). An endpoint that refuses the call, or
answers without per-token log-probabilities, gets its benchmark rows marked n/a with the reason —
never a 0, never a silent gap.

>>> option_logprob("Answer:", " yes", [None, -1.0, -0.5, -2.0, -9.0], [0, 6, 7, 9, 11])
-2.5
"""

from __future__ import annotations

from collections.abc import Sequence

from sftlab.evaluate.endpoint import Endpoint, _message, _status
from sftlab.evaluate.multiple_choice import (
    LETTERS,
    MCQuestion,
    MCResult,
    build_prompt,
    cloze_prompt,
    grade,
    per_character,
)

PROBE = ("Question: What colour is the sky on a clear day?\nAnswer:", " blue")


class NoLogprobs(Exception):
    """The endpoint cannot give log-probabilities of given text; the message says why (for the report)."""


def option_logprob(
    prompt: str, option: str, logprobs: Sequence[float | None], offsets: Sequence[int]
) -> float:
    """Summed log-probability of the tokens of ``option`` in the echoed ``prompt + option``.

    A token counts when it ends after the prompt and starts inside the text (a generated token after it
    does not); a token that straddles the boundary counts, as it would in a local tokenisation.
    """
    cut, end = len(prompt), len(prompt) + len(option)
    bounds = list(offsets[1:]) + [end]
    picked = [
        lp for lp, start, stop in zip(logprobs, offsets, bounds, strict=True) if stop > cut and start < end
    ]
    if not picked or any(lp is None for lp in picked):
        raise NoLogprobs("the echoed log-probabilities do not cover the scored text")
    return float(sum(lp for lp in picked if lp is not None))


def _echo(endpoint: Endpoint, prompt: str, option: str) -> float:
    """One request: the log-probability of ``option`` after ``prompt``."""
    import openai

    try:
        reply = endpoint.client.completions.create(
            model=endpoint.model, prompt=prompt + option, echo=True, logprobs=1, max_tokens=1, temperature=0
        )
    except openai.APIConnectionError as err:
        raise endpoint.error(err, "scoring text") from None
    except openai.APIStatusError as err:
        if err.status_code in (400, 404, 422, 501):
            raise NoLogprobs(
                endpoint.scrub(
                    f"/v1/completions with echo and logprobs refused: {_status(err)} {_message(err)}"
                )
            ) from None
        raise endpoint.error(err, "scoring text") from None
    lp = reply.choices[0].logprobs if reply.choices else None
    if lp is None or not lp.token_logprobs or not lp.text_offset:
        raise NoLogprobs("/v1/completions answered echo without per-token logprobs and text offsets")
    text = reply.choices[0].text or ""
    if not text.startswith(prompt + option):
        raise NoLogprobs("/v1/completions did not echo the prompt back (echo unsupported)")
    return option_logprob(prompt, option, lp.token_logprobs, lp.text_offset)


def probe(endpoint: Endpoint) -> None:
    """Raise :class:`NoLogprobs` (with the reason) unless the endpoint scores given text."""
    _echo(endpoint, *PROBE)


def evaluate_questions(
    endpoint: Endpoint, questions: Sequence[MCQuestion], shots: Sequence[Sequence[MCQuestion]], scoring: str
) -> MCResult:
    """Score every option of every question through the endpoint, then grade as local scoring does."""
    if scoring == "cloze":
        prompts = [cloze_prompt(q, s) for q, s in zip(questions, shots, strict=True)]
        options = [[" " + o.strip() for o in q.options] for q in questions]
    elif scoring == "letter":
        prompts = [build_prompt(q, s) for q, s in zip(questions, shots, strict=True)]
        options = [[" " + LETTERS[i] for i in range(len(q.options))] for q in questions]
    else:
        prompts = [build_prompt(q, s) for q, s in zip(questions, shots, strict=True)]
        options = [[" " + o.strip() for o in q.options] for q in questions]
    pairs = [(i, p, o) for i, p in enumerate(prompts) for o in options[i]]
    flat = endpoint.map(lambda pair: _echo(endpoint, pair[1], pair[2]), pairs)
    scores: list[list[float]] = [[] for _ in questions]
    for (i, _, _), value in zip(pairs, flat, strict=True):
        scores[i].append(value)
    return grade(questions, per_character(questions, scores) if scoring == "cloze" else scores)


def run_benchmarks(endpoint: Endpoint, benchmarks, limit: int | None = None) -> tuple[dict, dict[str, str]]:
    """``({name: MCResult}, {name: reason n/a})`` for the recipe's benchmarks on ``endpoint``."""
    if not benchmarks:
        return {}, {}
    try:
        probe(endpoint)
    except NoLogprobs as why:
        return {}, {b.name: str(why) for b in benchmarks}
    out, na = {}, {}
    for b in benchmarks:
        questions = b.questions[:limit] if limit else b.questions
        shots = [b.shots_for(i, q) if b.k_shot else () for i, q in enumerate(questions)]
        try:
            out[b.name] = evaluate_questions(endpoint, questions, shots, b.scoring)
        except NoLogprobs as why:
            na[b.name] = str(why)
    return out, na
