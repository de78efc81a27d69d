"""The calls both clients make, written once: their arguments, requests and metadata. How a
call is made and retried (blocking, or with asyncio) is each client's `_unary` and `_stream`,
over the one retry rule of synth_client.retry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from .events import voice_dict
from .request import DialogLike, build_request
from .retry import Backoff
from .v1 import synth_pb2 as pb
from .v1 import synth_pb2_grpc as pb_grpc

Events = TypeVar("Events")  # what a stream gives: an iterator of events, or an async one
Voices = TypeVar("Voices")  # what list_voices gives: the voices, or an awaitable of them


def _voices(reply: pb.ListVoicesResponse) -> list[dict[str, Any]]:
    return [voice_dict(v) for v in reply.voices]


class Calls(Generic[Events, Voices]):
    """The RPCs over `channel`, with a bearer `token` when given and `backoff` for retries."""

    def __init__(self, channel: Any, token: str | None, backoff: Backoff | None):
        self.channel = channel
        self.stub = pb_grpc.SynthStub(channel)
        self.metadata = [("authorization", f"Bearer {token}")] if token else []
        self.backoff = backoff or Backoff()

    def list_voices(self, timeout: float | None = 30.0) -> Voices:
        """The server's voices, each a dict (id, engine, model, speaker, params, meta)."""
        request = pb.ListVoicesRequest()
        return self._unary(
            lambda: self.stub.ListVoices(request, timeout=timeout, metadata=self.metadata), _voices
        )

    def synthesize(
        self,
        dialog: DialogLike,
        voices: Mapping[str, str] | None = None,
        *,
        conversation_id: str | None = None,
        seed: int | None = None,
        sample_format: str | None = None,
        stream_only: bool = False,
        timeout: float | None = None,
    ) -> Events:
        """A TurnEvent per turn as soon as it is ready, then one SummaryEvent (`stream_only`:
        nothing is written on the server). The dialog's shapes: synth_client.request."""
        request = build_request(dialog, voices, conversation_id, seed, sample_format, stream_only)
        return self._stream(lambda: self.stub.Synthesize(request, timeout=timeout, metadata=self.metadata))

    def _unary(self, call: Callable[[], Any], then: Callable[[Any], Any]) -> Voices:
        """`then(reply)` of the unary call `call()` makes, retried."""
        raise NotImplementedError

    def _stream(self, start: Callable[[], Any]) -> Events:
        """The events of the streaming call `start()` makes, retried."""
        raise NotImplementedError
