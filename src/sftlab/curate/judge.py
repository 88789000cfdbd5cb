"""An LLM judge: 1-10 ratings of records through any OpenAI-compatible endpoint.

Each aspect (``quality``, ``complexity``, or one of your own) is a prompt
template with ``{instruction}`` and ``{response}`` placeholders; the built-in
ones live in ``sftlab/curate/prompts/judge_<aspect>.txt``. Judges do not always
follow the output format, so :func:`parse_rating` reads the common shapes and
returns ``None`` for anything else — a malformed reply is counted, never fatal.

>>> parse_rating("The answer is correct but terse.\\nScore: 7")
7.0
>>> parse_rating('{"score": 9}'), parse_rating("[[4]]"), parse_rating("8/10")
(9.0, 4.0, 8.0)
>>> parse_rating("I would give it a high mark.") is None
True
>>> parse_rating("Score: 42") is None  # out of range is malformed, not clipped
True
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sftlab.data.record import Conversation, Record
from sftlab.errors import SftlabError
from sftlab.utils.progress import track

PROMPTS_DIR = Path(__file__).parent / "prompts"

_NUMBER = r"(-?\d+(?:\.\d+)?)"
# "Score: 7", "Rating - 7/10", "**Quality:** 8", "complexity is 6"
_LABELLED = re.compile(
    r"(?:score|rating|quality|complexity)\s*\**\s*(?:is|:|=|-)?\s*\**\s*" + _NUMBER + r"(?:\s*/\s*10)?",
    re.IGNORECASE,
)
_BRACKETED = re.compile(r"\[\[\s*" + _NUMBER + r"\s*\]\]")
_BARE = re.compile(r"^\s*\**\s*" + _NUMBER + r"\s*(?:/\s*10)?\s*\**\s*\.?\s*$")
_JSON_OBJECT = re.compile(r"\{[^{}]*\}")
_JSON_KEYS = ("score", "rating", "quality", "complexity")


def parse_rating(text: str | None, low: float = 1, high: float = 10) -> float | None:
    """The judge's rating in ``[low, high]``, or ``None`` when the reply has no usable one.

    Tried in order: a JSON object with a ``score``/``rating`` key, the *last*
    labelled ``Score: N`` (judges reason first, conclude last), ``[[N]]``, a
    reply that is only a number.
    """
    if not text:
        return None
    for candidate in (_from_json(text), _last(_LABELLED, text), _last(_BRACKETED, text), _last(_BARE, text)):
        if candidate is not None:
            return candidate if low <= candidate <= high else None
    return None


def _from_json(text: str) -> float | None:
    for match in reversed(_JSON_OBJECT.findall(text)):
        try:
            obj = json.loads(match)
        except ValueError:
            continue
        for key in _JSON_KEYS:
            value = obj.get(key) if isinstance(obj, dict) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
    return None


def _last(pattern: re.Pattern, text: str) -> float | None:
    matches = pattern.findall(text)
    return float(matches[-1]) if matches else None


def load_template(aspect: str, path: str | Path | None = None) -> str:
    """The prompt template of ``aspect``: ``path`` if given, else the built-in one."""
    file = Path(path) if path else PROMPTS_DIR / f"judge_{aspect}.txt"
    if not file.is_file():
        built_in = sorted(p.stem.removeprefix("judge_") for p in PROMPTS_DIR.glob("judge_*.txt"))
        raise SftlabError(
            f"no judge prompt for aspect '{aspect}' ({file} not found); built-in aspects: "
            f"{', '.join(built_in)} — or set judge.prompt_files.{aspect} to a template file"
        )
    template = file.read_text(encoding="utf-8")
    if "{response}" not in template and "{instruction}" not in template:
        raise SftlabError(f"judge prompt {file} has neither {{instruction}} nor {{response}} placeholders")
    return template


def render_prompt(template: str, record: Record) -> str:
    """Fill the template; plain replacement, so braces inside the data are safe."""
    if isinstance(record, Conversation):
        instruction = record.prompt_text()
        response = "\n\n".join(t.content for t in record.turns if t.role == "assistant")
    else:
        instruction, response = "", record.text
    return template.replace("{instruction}", instruction).replace("{response}", response)


@dataclass
class Judge:
    """A rating client: one chat request per (record, aspect), run on a thread pool.

    ``counts`` tells what happened: ``requests``, ``malformed`` (a reply without
    a usable rating) and ``errors`` (HTTP or connection failures).
    """

    base_url: str
    model: str
    api_key_env: str | None = None
    aspects: list[str] = field(default_factory=lambda: ["quality", "complexity"])
    prompt_files: dict[str, str] = field(default_factory=dict)
    max_workers: int = 4
    temperature: float = 0.0
    max_tokens: int = 256
    timeout: float = 60.0
    max_retries: int = 2
    cache: str | Path | None = None
    """SQLite file of replies (the synthesis request cache): a re-run asks only for what is missing."""
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self):
        self.templates = {a: load_template(a, self.prompt_files.get(a)) for a in self.aspects}
        self._client = None
        self._lock = threading.Lock()  # counts are bumped from the worker threads
        self.last_error = ""
        self._cache = None
        if self.cache is not None:
            from sftlab.synth.cache import RequestCache

            self._cache = RequestCache(Path(self.cache).expanduser())

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def client(self):
        if self._client is None:
            from openai import OpenAI

            self._client = OpenAI(
                base_url=self.base_url,
                api_key=self._api_key(),
                timeout=self.timeout,
                max_retries=self.max_retries,
            )
        return self._client

    def _api_key(self) -> str:
        if not self.api_key_env:
            return "EMPTY"  # local OpenAI-compatible servers accept any key
        key = os.environ.get(self.api_key_env)
        if not key:
            raise SftlabError(
                f"the judge's API key variable {self.api_key_env} is not set; export it, "
                "or set judge.api_key_env: null for an endpoint without authentication"
            )
        return key

    def ask(self, prompt: str) -> str | None:
        """The judge's reply to one prompt (from the cache when it has it); ``None`` (counted in ``errors``) on failure."""
        import openai

        from sftlab.synth.cache import CachedResponse, request_key

        messages = [{"role": "user", "content": prompt}]
        key = request_key(
            self.model, messages, {"temperature": self.temperature, "max_tokens": self.max_tokens}, None
        )
        if self._cache is not None and (hit := self._cache.get(key)) is not None:
            self._count("cache_hits")
            return hit.text
        self._count("requests")
        try:
            reply = self.client().chat.completions.create(
                model=self.model, messages=messages, temperature=self.temperature, max_tokens=self.max_tokens
            )
        except openai.OpenAIError as err:
            self._count("errors")
            self.last_error = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            return None
        text = reply.choices[0].message.content if reply.choices else None
        if self._cache is not None and text is not None:
            self._cache.put(key, CachedResponse(text))
        return text

    def rate(self, record: Record, aspect: str) -> float | None:
        """One rating; malformed replies count as ``malformed`` and give ``None``."""
        text = self.ask(render_prompt(self.templates[aspect], record))
        if text is None:
            return None
        rating = parse_rating(text)
        if rating is None:
            self._count("malformed")
        return rating

    def score(self, records: list[Record]) -> list[dict[str, float | None]]:
        """``{"judge_<aspect>": rating}`` per record, in input order.

        Raises when *every* request failed — the endpoint is down or misconfigured,
        and silently writing no scores would hide that.
        """
        self.client()  # fail early on a missing API key, before the thread pool
        jobs = [(i, aspect) for i in range(len(records)) for aspect in self.aspects]
        results: list[dict[str, float | None]] = [{} for _ in records]
        with ThreadPoolExecutor(max_workers=max(1, self.max_workers)) as pool:
            ratings = pool.map(lambda job: self.rate(records[job[0]], job[1]), jobs)
            for (i, aspect), rating in zip(jobs, track(ratings, "judge", total=len(jobs)), strict=True):
                results[i][f"judge_{aspect}"] = rating
        if jobs and self.counts["errors"] and self.counts["errors"] == self.counts["requests"]:
            raise SftlabError(
                f"every request to the judge at {self.base_url} failed (last: {self.last_error}); "
                "check judge.base_url, judge.model and that the server is running"
            )
        return results
