"""Which calls the service takes on now: none while it drains, at most `max_in_flight`
Synthesize calls and `max_streams` GetConversation streams at once (RESOURCE_EXHAUSTED past
them), and one call at a time per conversation id (ALREADY_EXISTS for a second)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import grpc

from synth.errors import RequestError

from .metrics import Metrics
from .streams import Slots


class Admission:
    """The service's admission control: the drain flag, the call and stream slots, and the
    conversation ids being synthesized now."""

    def __init__(self, max_in_flight: int, max_streams: int, metrics: Metrics):
        self.draining = threading.Event()
        self.calls = Slots(max_in_flight, "requests", metrics.in_flight.set)
        self.streams = Slots(max_streams, "conversation streams", metrics.streams_in_flight.set)
        self._lock = threading.Lock()
        self._claimed: set[str] = set()  # ids being synthesized here, claimed when a call starts

    @property
    def in_flight(self) -> int:
        """Synthesize calls being served (a drain waits for none)."""
        return self.calls.used

    def admit(self) -> None:
        """Take a Synthesize call's slot (give it back with `calls.give_back()`), or refuse."""
        if self.draining.is_set():
            raise RequestError(grpc.StatusCode.UNAVAILABLE, "server is draining; retry on another replica")
        self.calls.take()

    @contextlib.contextmanager
    def claim(self, conversation_id: str) -> Iterator[None]:
        """The conversation id, held by this call while it runs."""
        with self._lock:
            if conversation_id in self._claimed:
                raise RequestError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"conversation_id {conversation_id!r} is being synthesized by another call",
                )
            self._claimed.add(conversation_id)
        try:
            yield
        finally:
            with self._lock:
                self._claimed.discard(conversation_id)
