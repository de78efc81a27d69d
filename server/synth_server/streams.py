"""Bounds on what a client can hold by not reading its stream.

gRPC's synchronous server sends a streamed message from the handler's thread and waits there
until the client's flow-control window takes it, so a client that stops reading keeps that
thread, and the call's slot, for as long as its connection lives. `StallWatch` gives every
streaming call a bound: a message the client has not taken within `stall_seconds` ends the call
(cancelled, its thread and slot given back); so does a request the client has not sent within
that time (`awaiting_request`). `Slots` is the admission count of one kind of call, refusing
with RESOURCE_EXHAUSTED past its limit."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc

from synth.errors import RequestError

from .logs import CallLog

T = TypeVar("T")


class Slots:
    """At most `limit` calls of one kind at once; past it, RESOURCE_EXHAUSTED naming the limit."""

    def __init__(self, limit: int, what: str, on_change: Callable[[int], None] = lambda n: None):
        self.limit, self.what, self._on_change = limit, what, on_change
        self._lock = threading.Lock()
        self.used = 0

    def take(self) -> None:
        with self._lock:
            if self.used >= self.limit:
                raise RequestError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{self.used} {self.what} in flight (limit {self.limit}); retry with backoff",
                )
            self.used += 1
            self._on_change(self.used)

    def give_back(self) -> None:
        with self._lock:
            self.used -= 1
            self._on_change(self.used)


class _Watched:
    __slots__ = ("call", "context", "request", "waiting_since")

    def __init__(self, context: grpc.ServicerContext, call: CallLog, request: bool = False):
        self.context, self.call = context, call
        self.waiting_since: float | None = None  # when the message now being sent was handed over
        self.request = request  # waiting for the client's request, not for it to read


class StallWatch:
    """Cancels a streaming call whose client has not taken a message for `stall_seconds` (one
    watcher thread for all calls). Time the server spends making the next message does not
    count: only the time a sent message waits for the client."""

    def __init__(self, stall_seconds: float, on_stall: Callable[[CallLog], None] = lambda call: None):
        self.stall_seconds = stall_seconds
        self._on_stall = on_stall
        self._calls: set[_Watched] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="synth-stall-watch", daemon=True)
        self._thread.start()

    def watch(self, context: grpc.ServicerContext, call: CallLog, messages: Iterator[T]) -> Iterator[T]:
        """`messages`, passed on one at a time while the watcher keeps time on each send."""
        entry = _Watched(context, call)
        with self._lock:
            self._calls.add(entry)
        try:
            for message in messages:
                entry.waiting_since = time.monotonic()
                yield message
                entry.waiting_since = None
        finally:
            with self._lock:
                self._calls.discard(entry)
            close = getattr(messages, "close", None)
            if close is not None:
                close()  # the call's own clean-up (its slot, its log line) runs now

    @contextlib.contextmanager
    def awaiting_request(self, context: grpc.ServicerContext, call: CallLog) -> Iterator[None]:
        """While the block reads the call's request: a client that has not sent it within
        `stall_seconds` has its call cancelled (the read then ends), so a call that never sends
        its request gives its thread back instead of holding it until its deadline."""
        entry = _Watched(context, call, request=True)
        entry.waiting_since = time.monotonic()
        with self._lock:
            self._calls.add(entry)
        try:
            yield
        finally:
            with self._lock:
                self._calls.discard(entry)

    def stalled(self, now: float | None = None) -> list[_Watched]:
        now = time.monotonic() if now is None else now
        with self._lock:
            return [
                e
                for e in self._calls
                if e.waiting_since is not None and now - e.waiting_since > self.stall_seconds
            ]

    def _run(self) -> None:
        tick = max(0.05, min(1.0, self.stall_seconds / 4))
        while not self._stop.wait(tick):
            for entry in self.stalled():
                if entry.call.note:  # already cancelled, its thread not yet back
                    continue
                entry.call.note = (
                    f"client sent no request within {self.stall_seconds:g} s"
                    if entry.request
                    else f"client stopped reading (no message taken for {self.stall_seconds:g} s)"
                )
                self._on_stall(entry.call)
                entry.context.cancel()

    def close(self) -> None:
        self._stop.set()
