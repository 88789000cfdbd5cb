"""One generation thread owns the model; requests queue up and are batched where they can be.

The model is not thread-safe, so exactly one thread calls ``generate``. Requests
wait in a bounded queue (a full queue is refused at once, so the server answers
429 instead of piling up memory). When the worker takes a non-streaming request
it also takes every queued non-streaming request with the same sampling settings
(up to ``max_batch``) and generates them together, left-padded::

    row 0: [pad pad  p  p  p] → new tokens …
    row 1: [ p   p   p  p  p] → new tokens …

Requests with a ``seed`` run alone, so a seeded request gives the same answer
whatever else is queued.
"""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from sftlab.serve.text import StopScanner, cut_at_stop


class QueueFull(Exception):
    """The bounded queue is full; the caller should retry later (HTTP 429)."""


class WorkerStopped(Exception):
    """The worker has shut down (HTTP 503)."""


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 16
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def batch_key(self) -> tuple | None:
        """Requests with equal keys may share one ``generate`` call; ``None`` never batches."""
        if self.seed is not None:
            return None
        return (self.temperature, self.top_p)


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop" | "length"
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Job:
    prompt_ids: list[int]
    sampling: Sampling
    on_piece: Callable[[str], None] | None = None
    """Set for streaming: called from the worker thread with each safe-to-send text piece."""
    future: Future = field(default_factory=Future)
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def stream(self) -> bool:
        return self.on_piece is not None


class GenerationWorker:
    """Owns ``model`` and ``tokenizer``; :meth:`submit` returns a future of a :class:`Completion`."""

    def __init__(self, model, tokenizer, *, max_queue: int = 256, max_batch: int = 8, start: bool = True):
        self.model = model
        self.tokenizer = tokenizer
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.eos_ids = _eos_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        self.batches_run = 0
        self.largest_batch = 0
        self._queue: queue.Queue[Job] = queue.Queue()
        self._pending: collections.deque[Job] = collections.deque()
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
        self._queue.put(job)
        return job.future

    @property
    def outstanding(self) -> int:
        return self._outstanding

    def pause(self) -> None:
        """Stop taking new jobs (the running batch finishes); queued jobs wait until :meth:`resume`."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def close(self, timeout: float = 30.0) -> None:
        """Stop after the current batch; jobs still queued fail with :class:`WorkerStopped`."""
        self._closed.set()
        self._running.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        for job in [*self._pending, *_drain(self._queue)]:
            job.future.set_exception(WorkerStopped("the server is shutting down"))

    # --- the thread -------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._closed.is_set():
            self._running.wait()
            batch = self._next_batch()
            if not batch:
                continue
            if not self._running.is_set():  # paused while waiting for jobs: they wait for resume()
                self._pending.extendleft(reversed(batch))
                continue
            live = [job for job in batch if not job.cancelled.is_set()]
            try:
                if live:
                    self._generate(live)
            except Exception as err:  # a failed generate must not kill the worker
                for job in live:
                    if not job.future.done():
                        job.future.set_exception(err)
            finally:
                for job in batch:
                    if not job.future.done():
                        job.future.cancel()
                with self._lock:
                    self._outstanding -= len(batch)

    def _next_batch(self) -> list[Job]:
        if self._pending:
            first = self._pending.popleft()
        else:
            try:
                first = self._queue.get(timeout=0.1)
            except queue.Empty:
                return []
        key = first.sampling.batch_key()
        if first.stream or key is None:
            return [first]
        batch, skipped = [first], collections.deque()
        while self._pending and len(batch) < self.max_batch:
            job = self._pending.popleft()
            (batch if _joins(job, key) else skipped).append(job)
        while len(batch) < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            (batch if _joins(job, key) else skipped).append(job)
        # Jobs that could not join keep their place ahead of later arrivals.
        self._pending.extendleft(reversed(skipped))
        return batch

    def _generate(self, jobs: list[Job]) -> None:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        self.batches_run += 1
        self.largest_batch = max(self.largest_batch, len(jobs))
        device = next(self.model.parameters()).device
        width = max(len(job.prompt_ids) for job in jobs)
        ids = torch.full((len(jobs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(jobs), width), dtype=torch.long)
        for row, job in enumerate(jobs):
            n = len(job.prompt_ids)
            ids[row, width - n :] = torch.tensor(job.prompt_ids, dtype=torch.long)
            mask[row, width - n :] = 1
        sampling = jobs[0].sampling
        streamer = _PieceStreamer(self.tokenizer, jobs[0], self.eos_ids) if jobs[0].stream else None

        class _StopEarly(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                flags = [
                    job.cancelled.is_set() or (streamer is not None and streamer.scanner.stopped)
                    for job in jobs
                ]
                return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)

        kwargs = dict(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max(job.sampling.max_new_tokens for job in jobs),
            pad_token_id=self.pad_id,
            eos_token_id=sorted(self.eos_ids),
            stopping_criteria=StoppingCriteriaList([_StopEarly()]),
            streamer=streamer,
        )
        if sampling.temperature > 0:
            # top_k=0: OpenAI's API has no top-k, so transformers' default of 50 must not apply.
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        with torch.inference_mode():
            out = self.model.generate(**kwargs)
        new = out[:, width:].tolist()
        for row, job in enumerate(jobs):
            if streamer is not None:
                job.future.set_result(streamer.finish(len(job.prompt_ids)))
            else:
                job.future.set_result(self._finish(job, new[row]))

    def _finish(self, job: Job, tokens: list[int]) -> Completion:
        tokens = tokens[: job.sampling.max_new_tokens]
        finish = "length"
        for i, token in enumerate(tokens):
            if token in self.eos_ids:
                tokens, finish = tokens[: i + 1], "stop"
                break
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        text, stopped = cut_at_stop(text, list(job.sampling.stop))
        if stopped:
            finish = "stop"
        return Completion(text, finish, len(job.prompt_ids), len(tokens))


class _PieceStreamer:
    """A transformers streamer that decodes incrementally and passes stop-safe pieces to the job."""

    def __init__(self, tokenizer, job: Job, eos_ids: set[int]):
        self.tokenizer = tokenizer
        self.job = job
        self.eos_ids = eos_ids
        self.scanner = StopScanner(list(job.sampling.stop))
        self.tokens: list[int] = []
        self.decoded = ""
        self.saw_prompt = False
        self.ended_by_eos = False

    def put(self, value) -> None:
        if not self.saw_prompt:  # generate() first hands over the prompt
            self.saw_prompt = True
            return
        if self.ended_by_eos or self.scanner.stopped:
            return
        for token in value.reshape(-1).tolist():
            self.tokens.append(token)
            if token in self.eos_ids:
                self.ended_by_eos = True
                break
        text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # half a multi-byte character: wait for the next token
            return
        piece, self.decoded = text[len(self.decoded) :], text
        self._send(self.scanner.feed(piece))

    def end(self) -> None:
        self._send(self.scanner.flush())

    def _send(self, piece: str) -> None:
        if piece and not self.job.cancelled.is_set():
            self.job.on_piece(piece)

    def finish(self, prompt_tokens: int) -> Completion:
        tokens = self.tokens[: self.job.sampling.max_new_tokens]
        stopped = self.ended_by_eos or self.scanner.stopped
        text = self.scanner.text[: self.scanner.sent]
        return Completion(text, "stop" if stopped else "length", prompt_tokens, len(tokens))


def _joins(job: Job, key: tuple) -> bool:
    return not job.stream and job.sampling.batch_key() == key


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
