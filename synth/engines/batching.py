"""Dynamic batching in front of an engine: one worker thread owns the engine; requests from all
callers (the server's concurrent streams) wait in one queue; the worker takes up to `max_batch`
requests (and at most `max_batch_chars` characters), waiting at most `max_wait_ms` for a batch
to fill, runs one engine call, and hands each caller its own results.

Batches are cut per request, not per call: a call with more requests (a long turn's sentence
chunks) than fit in one batch is spread over consecutive batches, so the limits bound every
engine call; a call that does not fit whole is continued first in the next batch (callers are
served in arrival order). One owner thread also means the engine never runs twice at once, so a
CPU engine does not oversubscribe the cores and a GPU engine does not fight for memory. On an
out-of-memory error the batch is split in halves and retried, down to single requests, instead
of failing the callers."""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from ..domain import Voice
from ..errors import ConfigError
from ..options import option
from .base import Engine, EngineAudio, SynthesisRequest


@dataclass
class _Job:
    requests: Sequence[SynthesisRequest]
    future: Future[list[EngineAudio]]
    taken: int = 0  # requests handed to a batch so far
    results: list[EngineAudio | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.results = [None] * len(self.requests)


@dataclass(frozen=True)
class BatchConfig:
    """Dynamic batching limits: turns (sentence chunks) and characters per engine call (bounds
    GPU memory), and the longest wait for a batch to fill."""

    max_batch: int = option(
        16, env="MAX_BATCH", help="turns (sentence chunks) per engine call (dynamic batching)"
    )
    max_wait_ms: float = option(5.0, env="MAX_WAIT_MS", help="longest wait for a batch to fill")
    max_batch_chars: int = option(
        20_000, env="MAX_BATCH_CHARS", help="characters per engine call (bounds GPU memory)"
    )

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ConfigError("max_batch", "must be at least 1", self.max_batch)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an engine's error says it ran out of memory, so that half the batch may still fit."""
    return (
        isinstance(exc, MemoryError)
        or "OutOfMemory" in type(exc).__name__
        or "out of memory" in str(exc).lower()
    )


class BatchingEngine:
    """An Engine that queues calls to `engine` and batches them across callers."""

    def __init__(
        self,
        engine: Engine,
        max_batch: int = BatchConfig.max_batch,
        max_wait_ms: float = BatchConfig.max_wait_ms,
        max_batch_chars: int = BatchConfig.max_batch_chars,
        on_batch: Callable[[int, int], None] | None = None,
    ):
        if max_batch < 1:
            raise ConfigError("max_batch", "must be at least 1", max_batch)
        self.engine = engine
        self.name, self.model = engine.name, engine.model
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.max_batch_chars = max_batch_chars
        self.on_batch = on_batch  # (batch size, queue depth after taking it) -> None, for metrics
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="synth-engine", daemon=True)
        self._worker.start()

    # Engine protocol -----------------------------------------------------------------------
    def voices(self) -> list[Voice]:
        return self.engine.voices()

    def describe(self) -> dict[str, object]:
        return {**self.engine.describe(), "max_batch": self.max_batch}

    @property
    def deterministic(self) -> bool:
        return self.engine.deterministic

    def voice_distance(self, a: Voice, b: Voice) -> float:
        return self.engine.voice_distance(a, b)

    @classmethod
    def configured(
        cls,
        engine: Engine,
        config: BatchConfig,
        wait: bool = True,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> BatchingEngine:
        """A batcher with `config`'s limits; `wait=False` when one caller feeds it (nothing to
        wait for)."""
        return cls(
            engine, config.max_batch, config.max_wait_ms if wait else 0.0, config.max_batch_chars, on_batch
        )

    def synthesize(self, requests: Sequence[SynthesisRequest]) -> list[EngineAudio]:
        """Blocks the calling thread until the worker has synthesized `requests`."""
        if not requests:
            return []
        job = _Job(list(requests), Future())
        self._queue.put(job)
        return job.future.result()

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=10)

    # worker --------------------------------------------------------------------------------
    def _fits(self, size: int, chars: int, request: SynthesisRequest) -> bool:
        if size == 0:
            return True  # a batch holds at least one request, however long
        return size < self.max_batch and chars + len(request.text) <= self.max_batch_chars

    def _take(self, pending: collections.deque[_Job]) -> list[tuple[_Job, int]]:
        """Requests for one batch, oldest call first; waits up to max_wait for more calls while
        the batch has room. Returns (job, request index) pairs."""
        batch: list[tuple[_Job, int]] = []
        chars = 0
        deadline = time.monotonic() + self.max_wait
        while True:
            while pending:
                job = pending[0]
                if job.future.done():  # failed in an earlier batch: drop the rest of it
                    pending.popleft()
                    continue
                while job.taken < len(job.requests) and self._fits(
                    len(batch), chars, job.requests[job.taken]
                ):
                    batch.append((job, job.taken))
                    chars += len(job.requests[job.taken].text)
                    job.taken += 1
                if job.taken < len(job.requests):
                    return batch  # full: the rest of this call opens the next batch
                pending.popleft()
            timeout = deadline - time.monotonic()
            try:
                got = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                return batch
            if got is None:
                self._queue.put(None)  # close() after the calls already queued
                return batch
            pending.append(got)

    def _run(self) -> None:
        pending: collections.deque[_Job] = collections.deque()
        while True:
            if not pending:
                first = self._queue.get()
                if first is None:
                    return
                pending.append(first)
            batch = self._take(pending)
            if not batch:
                continue
            if self.on_batch:
                self.on_batch(len(batch), self._queue.qsize())
            try:
                results = self._synthesize_splitting([job.requests[i] for job, i in batch])
            except BaseException as exc:  # every call with a request in this batch fails
                for job, _ in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            for (job, i), audio in zip(batch, results):
                job.results[i] = audio
                if i == len(job.requests) - 1 and not job.future.done():
                    job.future.set_result(list(job.results))  # type: ignore[arg-type]

    def _synthesize_splitting(self, requests: list[SynthesisRequest]) -> list[EngineAudio]:
        try:
            return self.engine.synthesize(requests)
        except Exception as exc:
            if not is_out_of_memory(exc) or len(requests) == 1:
                raise
            half = len(requests) // 2
            return self._synthesize_splitting(requests[:half]) + self._synthesize_splitting(requests[half:])
