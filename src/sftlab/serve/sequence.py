"""One request inside the running batch: its new tokens, how it picks the next one, and when it is done.

A sequence ends on its own terms (an end-of-sequence token, a stop string, ``max_tokens``, the
server's time limit) or because its client left; the batch drops it at that step, so a short
answer is sent as soon as it is complete instead of when its longest neighbour is.

Token choice follows ``generate``: greedy is the argmax of the float32 logits; sampling scales
by the temperature, keeps the top-p nucleus (no top-k: OpenAI's API has none) and draws — from
the request's own random stream when it has a ``seed``, so a seeded request draws the same
numbers whatever else is in the batch. Penalties, ``logit_bias``, a grammar and log-probabilities
are per sequence too (``serve/logits.py``, ``serve/constrain.py``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sftlab.serve.logits import RowProcessor, TokenLogprob
from sftlab.serve.text import StopScanner

if TYPE_CHECKING:
    from sftlab.serve.constrain import Grammars
    from sftlab.serve.worker import Completion, Job

REASONS = ("stop", "length", "timeout", "cancelled")
"""Why a sequence left the batch; ``timeout`` is reported to the client as ``finish_reason: "length"``."""


class Sequence:
    """The state of one job while it generates; :meth:`push` takes each new token."""

    def __init__(self, job: Job, tokenizer, eos_ids: set[int], grammars: Grammars | None = None):
        self.job = job
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids
        self.tokens: list[int] = []
        self.logprobs: list[TokenLogprob] = []
        """Filled when the request asked for log-probabilities (``Sampling.logprobs`` is not None)."""
        self._logprobs_sent = 0
        grammar = job.sampling.grammar
        if grammar is not None and grammars is None:
            raise ValueError("a request with a grammar needs the worker's Grammars")
        self.matcher = grammars.matcher(grammar) if grammar is not None else None
        self.processor = RowProcessor(self) if RowProcessor.needed(self) else None
        self.reason: str | None = None
        self.scanner = StopScanner(list(job.sampling.stop))
        # Decoding every step costs time; only streams and stop strings need the text before the end.
        self.watch_text = job.stream or bool(job.sampling.stop)
        self._decoded = ""
        self._generator = None

    @property
    def done(self) -> bool:
        return self.reason is not None

    @property
    def sampled(self) -> bool:
        return self.job.sampling.temperature > 0

    def push(self, token: int) -> None:
        """Append ``token`` and decide whether the sequence is complete."""
        self.tokens.append(token)
        if self.matcher is not None:
            self.matcher.consume(token)
        if token in self.eos_ids:
            self.reason = "stop"
        elif self.watch_text:
            self._scan(final=False)
        if self.reason is None and len(self.tokens) >= self.job.sampling.max_new_tokens:
            self.reason = "length"
        if self.reason is not None and not self.scanner.stopped:
            self._scan(final=True)

    def check(self, now: float | None = None) -> None:
        """End the sequence if its client left or its time is up (between decode steps)."""
        if self.reason is not None:
            return
        if self.job.cancelled.is_set():
            self.reason = "cancelled"
        elif self.job.deadline is not None and (now or time.monotonic()) >= self.job.deadline:
            self.reason = "timeout"
            self._scan(final=True)

    def completion(self) -> Completion:
        from sftlab.serve.worker import Completion

        finish = "stop" if self.reason == "stop" else "length"
        text = self.scanner.text[: self.scanner.sent]
        logprobs = None
        if self.job.sampling.logprobs is not None:
            logprobs = [lp for lp in self.logprobs if lp.token not in self.eos_ids]
        return Completion(text, finish, len(self.job.prompt_ids), len(self.tokens), logprobs)

    def sample(self, logits) -> int:
        """Draw the next token from ``logits`` (``[1, vocab]``, float32) with this request's settings."""
        import torch
        from transformers import TemperatureLogitsWarper, TopPLogitsWarper

        sampling = self.job.sampling
        scores = TemperatureLogitsWarper(sampling.temperature)(None, logits)
        if sampling.top_p < 1.0:
            scores = TopPLogitsWarper(sampling.top_p)(None, scores)
        probs = torch.softmax(scores, dim=-1)
        if sampling.seed is not None and self._generator is None:
            self._generator = torch.Generator(device=logits.device).manual_seed(sampling.seed)
        return int(torch.multinomial(probs, 1, generator=self._generator)[0, 0])

    def _scan(self, *, final: bool) -> None:
        text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        if not final and text.endswith("\ufffd"):  # half a multi-byte character: wait for the next token
            return
        piece = self.scanner.feed(text[len(self._decoded) :])
        self._decoded = text
        if final:
            piece += self.scanner.flush()
        if self.scanner.stopped and self.reason is None:
            self.reason = "stop"
        if piece and self.job.on_piece is not None and not self.job.cancelled.is_set():
            fresh = [lp for lp in self.logprobs[self._logprobs_sent :] if lp.token not in self.eos_ids]
            self._logprobs_sent = len(self.logprobs)
            try:
                self.job.on_piece(piece, fresh)
            except Exception:  # the consumer is gone (its event loop closed): end this sequence only
                self.job.cancelled.set()
