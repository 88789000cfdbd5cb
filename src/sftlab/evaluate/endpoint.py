"""A model behind an OpenAI-compatible endpoint, evaluated like a local one.

A model reference ``openai:<base URL>#<model name>`` (``#<model name>`` optional: the first model
the endpoint lists) is an endpoint; ``evaluation.endpoints`` names endpoints in the recipe, with the
environment variable that holds the key. Answers come from ``chat.completions`` (greedy:
temperature 0, the recipe's ``max_new_tokens`` and seed), latency from streamed answers.

The key is read from the environment when the client is made and never kept anywhere else: every
error line passes through :meth:`Endpoint.scrub`, and references carry only the URL and model.

>>> parse_ref("openai:http://127.0.0.1:8000/v1#tiny")
('http://127.0.0.1:8000/v1', 'tiny')
>>> parse_ref("openai:https://host/v1")
('https://host/v1', None)
>>> is_endpoint("runs/a"), is_endpoint("openai:https://host/v1#m")
(False, True)
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sftlab.errors import SftlabError
from sftlab.evaluate.generation import Generation
from sftlab.recipe.sections.evaluation import EndpointSection

PREFIX = "openai:"
NO_KEY = "EMPTY"
"""Sent when the key's variable is unset: the client needs a string, local servers without a key ignore it."""


def is_endpoint(ref: str) -> bool:
    return ref.startswith(PREFIX)


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``(base URL, model name or None)`` of ``openai:URL#model``; a clear error for anything else."""
    url, _, model = ref.removeprefix(PREFIX).partition("#")
    if not is_endpoint(ref) or not url.startswith(("http://", "https://")):
        raise SftlabError(f"'{ref}' is not an endpoint reference: use openai:http(s)://host/v1#model-name")
    return url.rstrip("/"), model or None


def ref_of(section: EndpointSection) -> str:
    """The reference string of a recipe endpoint (what the report shows)."""
    return f"{PREFIX}{section.url.rstrip('/')}" + (f"#{section.model}" if section.model else "")


def endpoint_section(label: str, ref: str, sections: Sequence[EndpointSection]) -> EndpointSection:
    """The recipe's settings for ``label`` (by label, else by URL and model), else the defaults."""
    url, model = parse_ref(ref)
    for s in sections:
        if s.label == label or (s.url.rstrip("/") == url and s.model == model):
            return s.model_copy(update={"url": url, "model": model})
    return EndpointSection(label=label, url=url, model=model)


class Endpoint:
    """An OpenAI client for one endpoint and model; errors come out as one line without the key."""

    def __init__(self, label: str, settings: EndpointSection):
        from openai import OpenAI

        self.label, self.settings = label, settings
        self.key_env = settings.api_key_env
        self._key = os.environ.get(self.key_env) or None
        self.client = OpenAI(
            base_url=settings.url,
            api_key=self._key or NO_KEY,
            timeout=settings.timeout_s,
            max_retries=2,
        )
        self.model = settings.model or self._first_model()

    @property
    def ref(self) -> str:
        return f"{PREFIX}{self.settings.url}#{self.model}"

    def scrub(self, text: str) -> str:
        """``text`` with the key (if any) replaced: servers may echo a refused key back."""
        return text.replace(self._key, "***") if self._key else text

    def error(self, err: Exception, doing: str) -> SftlabError:
        """One line naming the endpoint, what was being done, and the fix where there is one."""
        import openai

        where = f"endpoint {self.label} ({self.settings.url})"
        if isinstance(err, openai.AuthenticationError | openai.PermissionDeniedError):
            hint = (
                f"the key in ${self.key_env} was refused"
                if self._key
                else f"it needs a key: set ${self.key_env} (or evaluation.endpoints[].api_key_env)"
            )
            return SftlabError(self.scrub(f"{where}: {doing}: {hint} ({_status(err)})"))
        if isinstance(err, openai.APIConnectionError):
            return SftlabError(
                self.scrub(f"{where}: {doing}: cannot connect ({err}); is the server running?")
            )
        return SftlabError(self.scrub(f"{where}: {doing}: {_status(err)} {_message(err)}"))

    def listed(self) -> list[str] | None:
        """The model ids the endpoint lists; ``None`` when it has no model list (404); other failures raise."""
        import openai

        try:
            return [m.id for m in self.client.models.list().data]
        except openai.NotFoundError:
            return None
        except openai.OpenAIError as err:
            raise self.error(err, "listing its models") from None

    def _first_model(self) -> str:
        models = self.listed()
        if not models:
            raise SftlabError(
                f"endpoint {self.label} ({self.settings.url}) lists no model; name one with #model"
            )
        return models[0]

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``fn`` over ``items`` with ``concurrency`` requests in flight, results in input order."""
        with ThreadPoolExecutor(max_workers=self.settings.concurrency) as pool:
            return list(pool.map(fn, items))

    def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, **kw: Any):
        """One greedy chat completion (the raw response); failures as :meth:`error`."""
        import openai

        extra = {"tools": tools} if tools else {}
        try:
            return self.client.chat.completions.create(
                model=self.model, messages=messages, temperature=0, **extra, **kw
            )
        except openai.OpenAIError as err:
            raise self.error(err, "chat completion") from None


def generate(
    endpoint: Endpoint,
    prompts: Sequence[list[dict[str, Any]]],
    *,
    max_new_tokens: int,
    seed: int | None,
    tools: Sequence[list[dict[str, Any]] | None] | None = None,
) -> list[Generation]:
    """Greedy answers of the endpoint, in input order (the same fields as local :func:`generate_batch`)."""
    tools = tools or [None] * len(prompts)
    seeded = {"seed": seed} if seed is not None else {}

    def one(pair) -> Generation:
        messages, offered = pair
        reply = endpoint.chat(messages, offered, max_tokens=max_new_tokens, **seeded)
        usage = reply.usage
        return Generation(
            text=answer_text(reply.choices[0].message),
            new_tokens=usage.completion_tokens if usage else 0,
            prompt_tokens=usage.prompt_tokens if usage else 0,
        )

    return endpoint.map(one, list(zip(prompts, tools, strict=True)))


def answer_text(message) -> str:
    """The answer's text; tool calls as ``<tool_call>`` JSON lines, the form a local model writes them in."""
    import json

    parts = [message.content or ""]
    for call in message.tool_calls or []:
        fn = call.function
        try:
            arguments = json.loads(fn.arguments)
        except (TypeError, ValueError):
            arguments = fn.arguments
        body = json.dumps({"name": fn.name, "arguments": arguments}, ensure_ascii=False)
        parts.append(f"<tool_call>\n{body}\n</tool_call>")
    return "\n".join(p for p in parts if p).strip()


@dataclass
class Streamed:
    """One streamed answer: seconds to its first text, seconds per further token, tokens generated."""

    ttft: float
    per_token: float | None
    tokens: int


def stream_once(
    endpoint: Endpoint,
    messages: list[dict[str, Any]],
    max_new_tokens: int,
    tools: list[dict[str, Any]] | None = None,
) -> Streamed:
    """Time one streamed greedy answer.

    Tokens of text: the usage chunk's count less the stop token (``finish_reason: stop`` counts a token
    that shows no text), or the content chunks when a server sends one per token without usage; the time
    per token spans the first to the last text chunk.
    """
    import openai

    chunks, tokens, finish = 0, None, None
    first = last = None
    start = time.perf_counter()
    try:
        stream = endpoint.client.chat.completions.create(
            model=endpoint.model,
            messages=messages,
            temperature=0,
            max_tokens=max_new_tokens,
            stream=True,
            stream_options={"include_usage": True},
            **({"tools": tools} if tools else {}),
        )
        for chunk in stream:
            now = time.perf_counter()
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
            for choice in chunk.choices:
                finish = choice.finish_reason or finish
                if choice.delta and choice.delta.content:
                    first = first if first is not None else now
                    last, chunks = now, chunks + 1
    except openai.OpenAIError as err:
        raise endpoint.error(err, "streamed chat completion") from None
    if first is None or last is None:
        return Streamed(ttft=time.perf_counter() - start, per_token=None, tokens=0)
    text_tokens = max(chunks, (tokens or 0) - (1 if finish == "stop" else 0))
    per_token = (last - first) / (text_tokens - 1) if text_tokens > 1 and last > first else None
    return Streamed(ttft=first - start, per_token=per_token, tokens=text_tokens)


def _spread(values: Sequence[float]) -> float:
    """(max − min) / median of one prompt's repeats; 0 below two values."""
    if len(values) < 2 or statistics.median(values) <= 0:
        return 0.0
    return (max(values) - min(values)) / statistics.median(values)


def _summary(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    median = statistics.median(values)
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {
        "median_s": median,
        "min_s": min(values),
        "max_s": max(values),
        "q1_s": q[0],
        "q3_s": q[2],
        "spread": (max(values) - min(values)) / median if median > 0 else 0.0,
    }


def stream_latency(
    endpoint: Endpoint,
    prompts: Sequence[list[dict[str, Any]]],
    *,
    max_new_tokens: int,
    repeats: int,
    tools: Sequence[list[dict[str, Any]] | None] | None = None,
    warmup: int,
    max_spread: float,
) -> dict[str, Any]:
    """TTFT and time per token from streamed answers to ``prompts`` (one request at a time), median and spread."""
    tools = tools or [None] * len(prompts)
    for messages, offered in list(zip(prompts, tools, strict=True))[: max(warmup, 0)]:
        stream_once(endpoint, messages, max_new_tokens, offered)
    by_prompt: list[list[Streamed]] = [[] for _ in prompts]
    for _ in range(repeats):  # prompt after prompt, then again: a burst of load hits every prompt alike
        for i, messages in enumerate(prompts):
            by_prompt[i].append(stream_once(endpoint, messages, max_new_tokens, tools[i]))
    runs = [r for rs in by_prompt for r in rs]
    ttft = _summary([r.ttft for r in runs])
    per_token = _summary([r.per_token for r in runs if r.per_token is not None])
    warnings = []
    if per_token is None:
        warnings.append("no answer had two tokens or more: time per token not measured")
    # prompts differ in length, so only the repeats of one prompt are expected to agree
    worst = max(
        (
            _spread(vals)
            for rs in by_prompt
            for vals in ([r.ttft for r in rs], [r.per_token for r in rs if r.per_token])
        ),
        default=0.0,
    )
    if worst > max_spread:
        warnings.append(
            f"repeats of one prompt disagree by up to {worst:.0%} of their median (allowed {max_spread:.0%}): "
            "the endpoint, the network or this machine was busy; the medians are still the figures to compare"
        )
    return {
        "kind": "streamed",
        "ttft": ttft,
        "s_per_token": per_token,
        "tokens_per_s": 1.0 / per_token["median_s"] if per_token and per_token["median_s"] > 0 else None,
        "prompts": len(prompts),
        "repeats": repeats,
        "requests": len(runs),
        "tokens_median": statistics.median([r.tokens for r in runs]) if runs else 0,
        "warnings": warnings,
    }


def _status(err: Exception) -> str:
    code = getattr(err, "status_code", None)
    return f"HTTP {code}" if code else type(err).__name__


def _message(err: Exception) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(err)
