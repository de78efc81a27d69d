"""The synchronous client."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from .calls import Calls
from .channel import CHANNEL_OPTIONS, PathLike, channel_for, read_ca
from .events import EventAssembler, SummaryEvent, TurnEvent
from .retry import Backoff, retried, retried_call
from .v1 import synth_pb2 as pb

__all__ = ["CHANNEL_OPTIONS", "PathLike", "SynthClient", "channel_for", "read_ca"]


class SynthClient(Calls[Iterator[TurnEvent | SummaryEvent], list[dict[str, Any]]]):
    """
        with SynthClient("localhost:50051") as c:
            for event in c.synthesize([("A", "Hi."), ("B", "Hello!")], voices={"A": "joe-vt0.88"}):
                ...   # TurnEvent per turn as soon as it is ready, then one SummaryEvent

    Retries with backoff on UNAVAILABLE and RESOURCE_EXHAUSTED only, and only before the first
    message of a stream arrived (so a retry never duplicates turns). TLS: `tls=True` trusts the
    system's CAs, `tls_ca="ca.pem"` a private CA's file (`root_certificates`: its PEM bytes)."""

    def __init__(
        self,
        target: str,
        token: str | None = None,
        tls: bool = False,
        root_certificates: bytes | None = None,
        backoff: Backoff | None = None,
        *,
        tls_ca: PathLike | None = None,
    ):
        self.target = target
        super().__init__(channel_for(target, tls, root_certificates, tls_ca), token, backoff)

    def __enter__(self) -> SynthClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def wait_ready(self, timeout: float = 30.0) -> None:
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def get_conversation(
        self, conversation_id: str, *, timeout: float | None = None
    ) -> Iterator[TurnEvent | SummaryEvent]:
        """A conversation already in the server's dataset, streamed like `synthesize` streams it
        (NOT_FOUND, as InvalidRequest, when the dataset does not list it)."""
        request = pb.GetConversationRequest(conversation_id=conversation_id)
        return self._stream(
            lambda: self.stub.GetConversation(request, timeout=timeout, metadata=self.metadata)
        )

    def _unary(self, call: Callable[[], Any], then: Callable[[Any], Any]) -> Any:
        return then(retried_call(call, self.backoff))

    def _stream(self, start: Callable[[], Any]) -> Iterator[TurnEvent | SummaryEvent]:
        assembler = EventAssembler()
        with contextlib.closing(retried(start, self.backoff)) as messages:
            for message in messages:
                event = assembler.feed(message)
                if event is not None:
                    yield event
