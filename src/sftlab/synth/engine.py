"""Send many chat requests to an OpenAI-compatible teacher: concurrent, retried, cached, accounted.

Pipelines hand the engine a list of :class:`ChatRequest` and get back one
:class:`ChatResult` per request, in the same order, whatever order the answers
arrived in — so a run is reproducible given the same teacher responses.

* concurrency: a thread pool of ``teacher.concurrency`` workers (the ``openai``
  client is thread-safe and keeps one connection pool);
* retries: 429, 5xx, timeouts and dropped connections are retried with
  exponential backoff and jitter (``Retry-After`` is honoured); after
  ``max_retries`` the item fails and is counted, the run goes on;
* an unreachable endpoint, a wrong key or an unknown model stop the run with
  one clear line (:class:`TeacherError`), since every later request would fail
  the same way; what was answered so far stays in the cache;
* cache: every answer is committed as it arrives (:mod:`.cache`), so a re-run
  after a crash sends only what is missing;
* accounting: requests, cache hits, retries, failures by reason, tokens from the
  responses' ``usage`` and the cost at the configured prices;
* coalescing: identical requests in flight at once (two chunks asking the same
  closed-book question) are sent once; the others wait for that answer
  (``coalesced``), so the cache is never raced.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from sftlab.errors import SftlabError
from sftlab.recipe.sections.synth import TeacherSection
from sftlab.synth.cache import CachedResponse, RequestCache, request_key
from sftlab.utils.progress import make_progress

MAX_REFUSED_IN_ROW = 20
"""Stop the run after this many consecutive failed requests: 4xx other than 429, or 429/5xx/timeouts still
failing after ``max_retries``."""


class TeacherError(SftlabError):
    """The teacher cannot answer any request (down, wrong key, unknown model)."""


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to ask for. ``template`` names the prompt template, for accounting."""

    messages: tuple[tuple[str, str], ...]
    template: str
    seed: int
    temperature: float | None = None
    max_tokens: int | None = None

    @classmethod
    def user(cls, text: str, template: str, seed: int, **kwargs: Any) -> ChatRequest:
        """A single user message."""
        return cls(messages=(("user", text),), template=template, seed=seed, **kwargs)


@dataclass
class ChatResult:
    """The teacher's answer to one request, or why there is none."""

    request: ChatRequest
    text: str | None = None
    error: str | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.text is not None


@dataclass
class Usage:
    """What a run cost: requests, tokens, money, failures (thread-safe counters)."""

    price_input_per_1m: float = 0.0
    price_output_per_1m: float = 0.0
    requests_sent: int = 0
    cache_hits: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    coalesced: int = 0
    failures: Counter = field(default_factory=Counter)
    by_template: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def fail(self, reason: str) -> None:
        with self._lock:
            self.failures[reason] += 1

    @property
    def cost(self) -> float:
        """Cost of the tokens spent by this run (cache hits are free)."""
        return (
            self.prompt_tokens * self.price_input_per_1m + self.completion_tokens * self.price_output_per_1m
        ) / 1e6

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests_sent": self.requests_sent,
            "cache_hits": self.cache_hits,
            "coalesced": self.coalesced,
            "retries": self.retries,
            "failed_requests": dict(self.failures),
            "requests_by_template": dict(self.by_template),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_prompt_tokens": self.cached_prompt_tokens,
            "cached_completion_tokens": self.cached_completion_tokens,
            "cost": round(self.cost, 6),
        }


class _Retry(Exception):
    def __init__(self, reason: str, delay: float | None = None):
        self.reason = reason
        self.delay = delay


class Teacher:
    """A teacher endpoint with its cache and accounting."""

    def __init__(self, config: TeacherSection, cache: RequestCache):
        import openai

        self.config = config
        self.cache = cache
        self.usage = Usage(config.price_input_per_1m, config.price_output_per_1m)
        # The client's own retries are off: ours count, back off with jitter and report.
        self._client = openai.OpenAI(
            base_url=config.base_url,
            api_key=os.environ.get(config.api_key_env) or "sftlab-no-key",
            timeout=config.timeout_s,
            max_retries=0,
        )
        self._jitter = random.Random()  # timing only; never affects content
        self._refused_in_row = 0
        self._inflight: dict[str, Future] = {}
        self._inflight_lock = threading.Lock()

    def complete_many(self, requests: list[ChatRequest], description: str) -> list[ChatResult]:
        """Answer every request (cache first), concurrently; results in request order."""
        results: list[ChatResult | None] = [None] * len(requests)
        if not requests:
            return []
        with make_progress() as progress, ThreadPoolExecutor(self.config.concurrency) as pool:
            task = progress.add_task(description, total=len(requests), info="")
            futures = {pool.submit(self.complete, req): i for i, req in enumerate(requests)}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for fut in done:
                    if fut.exception() is not None:
                        for other in pending:
                            other.cancel()
                        raise fut.exception()  # type: ignore[misc]
                    results[futures[fut]] = fut.result()
                    progress.advance(task, 1)
                progress.update(
                    task, info=f"{self.usage.prompt_tokens + self.usage.completion_tokens} tokens"
                )
        return results  # type: ignore[return-value]

    def complete(self, req: ChatRequest) -> ChatResult:
        """Answer one request: from the cache, from an identical request in flight, or from the teacher."""
        params = self._params(req)
        messages = [{"role": role, "content": content} for role, content in req.messages]
        key = request_key(self.config.model, messages, params, req.seed)
        hit = self.cache.get(key)
        if hit is not None:
            self.usage.add(
                cache_hits=1,
                cached_prompt_tokens=hit.prompt_tokens,
                cached_completion_tokens=hit.completion_tokens,
            )
            return ChatResult(req, text=hit.text, cached=True)
        with self._inflight_lock:
            owner = key not in self._inflight
            if owner:
                self._inflight[key] = Future()
            pending = self._inflight[key]
        if not owner:
            first = pending.result()  # re-raises a TeacherError of the request it waited for
            self.usage.add(coalesced=1)
            return ChatResult(req, text=first.text, error=first.error, cached=first.ok)
        try:
            result = self._ask(req, key, messages, params)
        except BaseException as err:
            pending.set_exception(err)
            raise
        else:
            pending.set_result(result)
            return result
        finally:
            with self._inflight_lock:
                del self._inflight[key]

    def _ask(
        self, req: ChatRequest, key: str, messages: list[dict[str, str]], params: dict[str, Any]
    ) -> ChatResult:
        """Send one request to the teacher, retrying what is worth retrying."""
        with self.usage._lock:
            self.usage.by_template[req.template] += 1
        attempt = 0
        while True:
            try:
                response = self._send(messages, params, req.seed)
            except _Retry as retry:
                if attempt >= self.config.max_retries:
                    if retry.reason == "connection_error":
                        raise TeacherError(
                            f"cannot reach the teacher at {self.config.base_url} after "
                            f"{attempt + 1} attempts; start the server or fix synth.teacher.base_url "
                            "(answers received so far are cached and will not be asked again)"
                        ) from None
                    self.usage.fail(retry.reason)
                    self._count_refusal(_Failed(retry.reason, f"still failing after {attempt + 1} attempts"))
                    return ChatResult(req, error=retry.reason)
                self.usage.add(retries=1)
                time.sleep(self._delay(attempt, retry.delay))
                attempt += 1
                continue
            except _Failed as failed:
                self.usage.fail(failed.reason)
                self._count_refusal(failed)
                return ChatResult(req, error=failed.reason)
            with self.usage._lock:
                self._refused_in_row = 0
            self.cache.put(key, response)
            self.usage.add(
                requests_sent=1,
                prompt_tokens=response.prompt_tokens,
                completion_tokens=response.completion_tokens,
            )
            return ChatResult(req, text=response.text)

    def _count_refusal(self, failed: _Failed) -> None:
        # One failed request is the item's problem; many in a row mean every request fails the same way
        # (a server answering 500 to everything, an endpoint that is not chat-completions, a parameter the
        # server rejects): stop early with one line instead of spending the run on it.
        with self.usage._lock:
            self._refused_in_row += 1
            stop = self._refused_in_row >= MAX_REFUSED_IN_ROW
        if stop:
            raise TeacherError(
                f"the teacher at {self.config.base_url} failed {MAX_REFUSED_IN_ROW} requests in a row "
                f"(last: {failed.reason}: {failed.message}); check the server and synth.teacher.base_url and model"
            )

    def _params(self, req: ChatRequest) -> dict[str, Any]:
        return {
            "temperature": self.config.temperature if req.temperature is None else req.temperature,
            "top_p": self.config.top_p,
            "max_tokens": self.config.max_tokens if req.max_tokens is None else req.max_tokens,
        }

    def _delay(self, attempt: int, server_hint: float | None) -> float:
        base = min(self.config.max_backoff_s, self.config.backoff_s * (2**attempt))
        # Full jitter spreads retries of many workers so they don't hit the server in step.
        delay = base * (0.5 + 0.5 * self._jitter.random())
        if server_hint is not None:
            delay = max(delay, min(server_hint, self.config.max_backoff_s))
        return delay

    def _send(self, messages: list[dict[str, str]], params: dict[str, Any], seed: int) -> CachedResponse:
        import openai

        try:
            response = self._client.chat.completions.create(
                model=self.config.model, messages=messages, seed=seed, **params
            )
        except openai.APITimeoutError:
            raise _Retry("timeout") from None
        except openai.APIConnectionError:
            raise _Retry("connection_error") from None
        except openai.APIStatusError as err:
            status = err.status_code
            if status == 429 or status >= 500 or status == 408:
                raise _Retry(f"http_{status}", _retry_after(err)) from None
            if status in (401, 403):
                raise TeacherError(
                    f"the teacher at {self.config.base_url} refused the API key (HTTP {status}); "
                    f"set the key in ${self.config.api_key_env} (synth.teacher.api_key_env)"
                ) from None
            if status == 404:
                raise TeacherError(
                    f"the teacher at {self.config.base_url} answered 404 for model "
                    f"'{self.config.model}'; check synth.teacher.model and synth.teacher.base_url (…/v1)"
                ) from None
            raise _Failed(f"http_{status}", _message(err)) from None
        if not response.choices:
            raise _Failed("empty_response")
        text = response.choices[0].message.content or ""
        usage = response.usage
        return CachedResponse(
            text=text,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        )


class _Failed(Exception):
    def __init__(self, reason: str, message: str = ""):
        self.reason = reason
        self.message = message


def _message(err: Any) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:200]
        return str(body)[:200]
    return str(err)[:200]


def _retry_after(err: Any) -> float | None:
    try:
        value = err.response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, ValueError):
        return None
