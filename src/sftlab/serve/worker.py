"""One generation thread owns the model and runs every request through one continuous batch.

The model is not thread-safe, so exactly one thread calls it. Requests wait in a bounded queue
(a full queue is refused at once, so the server answers 429 instead of piling up memory).
Between decode steps the thread admits queued requests into the running batch (up to
``max_batch`` sequences), and every sequence leaves the batch at the step that completes it,
so short requests are answered while long ones are still generating (see ``serve/batch.py``)::

    step:    1   2   3   4   5   6 …
    long:    ■   ■   ■   ■   ■   ■ …
    short:   ■   ■ → answered
    new:             ■   ■   ■ → answered       (joined between steps 2 and 3)

A request whose client left (``Job.cancelled``) or whose time limit passed leaves at the next
step; streamed and non-streamed requests, seeded or not, share the batch.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from sftlab.serve.batch import BatchStats, DecodeBatch
from sftlab.serve.constrain import Grammars
from sftlab.serve.logits import TokenLogprob
from sftlab.serve.sequence import Sequence


class QueueFull(Exception):
    """The bounded queue is full; the caller should retry later (HTTP 429)."""


class WorkerStopped(Exception):
    """The worker has shut down (HTTP 503)."""


class RequestTimeout(Exception):
    """The request waited in the queue past the server's time limit and never started (HTTP 503)."""


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 16
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()
    logprobs: int | None = None
    """None: no log-probabilities; k: each token's own plus the k most likely alternatives."""
    grammar: str | None = None
    """An llguidance grammar (``serve/constrain.py``) the output must match."""


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop" | "length"
    prompt_tokens: int
    completion_tokens: int
    logprobs: list[TokenLogprob] | None = None
    """One entry per generated token but end-of-sequence ones, when the request asked for them."""


@dataclass
class Job:
    prompt_ids: list[int]
    sampling: Sampling
    on_piece: Callable[[str, list[TokenLogprob]], None] | None = None
    """Set for streaming: called from the worker thread with each safe-to-send text piece and the
    log-probabilities of the tokens generated since the last piece (empty unless asked for)."""
    future: Future = field(default_factory=Future)
    cancelled: threading.Event = field(default_factory=threading.Event)
    """Set when the client is gone; the sequence leaves the batch at the next step."""
    deadline: float | None = None
    """``time.monotonic()`` after which the job is cut short; set by :meth:`GenerationWorker.submit`."""

    @property
    def stream(self) -> bool:
        return self.on_piece is not None


class GenerationWorker:
    """Owns ``model`` and ``tokenizer``; :meth:`submit` returns a future of a :class:`Completion`.

    ``request_timeout`` (seconds from submission) bounds each request: a running one ends with
    the text so far (``finish_reason: "length"``); one still queued fails with :class:`RequestTimeout`.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        max_queue: int = 256,
        max_batch: int = 8,
        request_timeout: float | None = None,
        start: bool = True,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.request_timeout = request_timeout
        self.eos_ids = _eos_ids(model, tokenizer)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        self._batch = DecodeBatch(model, pad_id, repetition_penalty=_repetition_penalty(model))
        self.vocab_size = max(len(tokenizer), int(getattr(model.config, "vocab_size", 0) or 0))
        self.grammars = Grammars(tokenizer, self.eos_ids, self.vocab_size)
        self._queue: queue.Queue[Job] = queue.Queue()
        self._pending: collections.deque[Job] = collections.deque()
        """Jobs taken from the queue just as the worker was paused: first in line on resume."""
        self._outstanding = 0
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._running.set()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sftlab-generate", daemon=True)
        if start:
            self._thread.start()

    # --- public -----------------------------------------------------------------------------------
    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    def submit(self, job: Job) -> Future:
        """Queue ``job``; raises :class:`QueueFull` when ``max_queue`` jobs are waiting or running."""
        if self._closed.is_set():
            raise WorkerStopped("the generation worker has stopped")
        with self._lock:
            if self._outstanding >= self.max_queue:
                raise QueueFull(f"{self._outstanding} requests are queued (the limit is {self.max_queue})")
            self._outstanding += 1
        if self.request_timeout is not None and job.deadline is None:
            job.deadline = time.monotonic() + self.request_timeout
        self._queue.put(job)
        return job.future

    @property
    def outstanding(self) -> int:
        """Requests queued or generating."""
        return self._outstanding

    @property
    def active(self) -> int:
        """Sequences in the running batch."""
        return len(self._batch.seqs)

    @property
    def stats(self) -> BatchStats:
        return self._batch.stats

    def pause(self) -> None:
        """Admit no new jobs (running sequences go on); queued jobs wait until :meth:`resume`."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def close(self, timeout: float = 30.0) -> None:
        """Stop after the current step; running and queued jobs fail with :class:`WorkerStopped`."""
        self._closed.set()
        self._running.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        stopped = WorkerStopped("the server is shutting down")
        for job in [seq.job for seq in self._batch.clear()] + [*self._pending] + _drain(self._queue):
            self._settle(job, error=stopped)

    # --- the thread -------------------------------------------------------------------------------
    def _loop(self) -> None:
        import torch

        with torch.inference_mode():
            self._batch.probe()
            while not self._closed.is_set():
                if not self._batch.seqs:
                    self._running.wait()
                if self._running.is_set() and not self._closed.is_set():
                    self._admit()
                if self._batch.seqs:
                    self._step()

    def _admit(self) -> None:
        """Move queued jobs into the batch while it has room (waiting briefly for one when idle)."""
        jobs = self._take(self._batch.free_slots(self.max_batch), wait=not self._batch.seqs)
        if not self._running.is_set():  # paused while waiting for jobs: they wait for resume()
            self._pending.extendleft(reversed(jobs))
            return
        now = time.monotonic()
        seqs = []
        for job in jobs:
            if job.cancelled.is_set():
                self._batch.stats.finished["cancelled"] += 1
                self._settle(job, cancel=True)
            elif job.deadline is not None and now >= job.deadline:
                self._batch.stats.finished["timeout"] += 1
                waited = f"it waited {self.request_timeout:g} s in the queue (--request-timeout)"
                self._settle(job, error=RequestTimeout(f"the server is busy: {waited}; retry later"))
            else:
                try:
                    seqs.append(Sequence(job, self.tokenizer, self.eos_ids, self.grammars))
                except Exception as err:  # a grammar the matcher refuses fails this request only
                    self._batch.stats.finished["error"] += 1
                    self._settle(job, error=err)
        if not seqs:
            return
        try:
            self._finish(self._batch.admit(seqs))
        except Exception as err:  # a failed prefill fails its own requests, not the running ones
            self._batch.stats.finished["error"] += len(seqs)
            for seq in seqs:
                self._settle(seq.job, error=err)

    def _step(self) -> None:
        try:
            self._finish(self._batch.step())
        except Exception as err:  # a failed step must not kill the worker
            failed = self._batch.clear()
            self._batch.stats.finished["error"] += len(failed)
            for seq in failed:
                self._settle(seq.job, error=err)

    def _take(self, n: int, *, wait: bool) -> list[Job]:
        jobs: list[Job] = []
        while self._pending and len(jobs) < n:
            jobs.append(self._pending.popleft())
        while len(jobs) < n:
            try:
                jobs.append(self._queue.get(timeout=0.1) if wait and not jobs else self._queue.get_nowait())
            except queue.Empty:
                break
        return jobs

    def _finish(self, seqs: list[Sequence]) -> None:
        for seq in seqs:
            if seq.reason == "cancelled":
                self._settle(seq.job, cancel=True)
            else:
                self._settle(seq.job, result=seq.completion())

    def _settle(
        self,
        job: Job,
        *,
        result: Completion | None = None,
        error: BaseException | None = None,
        cancel: bool = False,
    ) -> None:
        if not job.future.done():
            if cancel:
                job.future.cancel()
            elif error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(result)
        with self._lock:
            self._outstanding -= 1


def _drain(q: queue.Queue) -> list[Job]:
    jobs = []
    while True:
        try:
            jobs.append(q.get_nowait())
        except queue.Empty:
            return jobs


def _eos_ids(model, tokenizer) -> set[int]:
    """End-of-sequence ids from the generation config (chat models often add their end-of-turn) and tokenizer."""
    ids: set[int] = set()
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (config_eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids


def _repetition_penalty(model) -> float | None:
    """The model's own ``repetition_penalty`` (some chat models ship one), which ``generate`` would apply too."""
    value = getattr(getattr(model, "generation_config", None), "repetition_penalty", None)
    return float(value) if value not in (None, 1.0) else None
