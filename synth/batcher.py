"""Dynamic batching in front of an engine: one worker thread owns the engine; requests from all
callers (the server's concurrent streams) wait in one queue; the worker takes up to `max_batch`
requests (and at most `max_batch_chars` characters), waiting at most `max_wait_ms` for a batch
to fill, runs one engine call, and hands each caller its own results.

One owner thread also means the engine never runs twice at once, so a CPU engine does not
oversubscribe the cores and a GPU engine does not fight for memory. On an out-of-memory error the
batch is split in halves and retried, down to single requests, instead of failing the callers."""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, Sequence

from .domain import Voice
from .engines.base import Engine, EngineAudio, SynthesisRequest


@dataclass
class _Job:
    requests: Sequence[SynthesisRequest]
    future: Future[list[EngineAudio]]


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__ or "out of memory" in str(exc).lower()


class BatchingEngine:
    """An Engine that queues calls to `engine` and batches them across callers."""

    def __init__(self, engine: Engine, max_batch: int = 16, max_wait_ms: float = 5.0,
                 max_batch_chars: int = 20_000,
                 on_batch: Callable[[int, int], None] | None = None):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
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

    def synthesize(self, requests: Sequence[SynthesisRequest]) -> list[EngineAudio]:
        """Blocks the calling thread until the worker has synthesized `requests`."""
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
    def _take(self, first: _Job) -> list[_Job]:
        jobs, size = [first], len(first.requests)
        chars = sum(len(r.text) for r in first.requests)
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch:
            timeout = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)
                break
            job_chars = sum(len(r.text) for r in job.requests)
            if size + len(job.requests) > self.max_batch or chars + job_chars > self.max_batch_chars:
                self._queue.put(job)  # goes to the next batch (order among callers is not needed)
                break
            jobs.append(job)
            size += len(job.requests)
            chars += job_chars
        return jobs

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = self._take(first)
            requests = [r for job in jobs for r in job.requests]
            if self.on_batch:
                self.on_batch(len(requests), self._queue.qsize())
            try:
                results = self._synthesize_splitting(requests)
            except BaseException as exc:  # deliver the failure to every caller of this batch
                for job in jobs:
                    job.future.set_exception(exc)
                continue
            i = 0
            for job in jobs:
                job.future.set_result(results[i:i + len(job.requests)])
                i += len(job.requests)

    def _synthesize_splitting(self, requests: list[SynthesisRequest]) -> list[EngineAudio]:
        try:
            return self.engine.synthesize(requests)
        except Exception as exc:
            if not is_out_of_memory(exc) or len(requests) == 1:
                raise
            half = len(requests) // 2
            return self._synthesize_splitting(requests[:half]) + self._synthesize_splitting(requests[half:])
