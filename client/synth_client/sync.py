"""The synchronous client."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Union

import grpc

from .errors import translate
from .events import (
    RETRYABLE,
    Backoff,
    DialogLike,
    EventAssembler,
    SummaryEvent,
    TurnEvent,
    build_request,
    voice_dict,
)
from .v1 import synth_pb2 as pb
from .v1 import synth_pb2_grpc as pb_grpc

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
    # With a `dns:///name:port` target that resolves to several replicas (a Kubernetes headless
    # Service), spread calls over all of them instead of pinning to the first address.
    ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})),
    # A server that went away is tried again every 5 s at most (gRPC's default grows to 120 s),
    # so a restarted replica gets calls again soon after it is back.
    ("grpc.max_reconnect_backoff_ms", 5000),
]
PathLike = Union[str, "os.PathLike[str]"]


def read_ca(tls_ca: PathLike | None, root_certificates: bytes | None = None) -> bytes | None:
    """The PEM bytes of the CA(s) to trust: `tls_ca` (a file) or `root_certificates` (bytes)."""
    if tls_ca is None:
        return root_certificates
    try:
        return Path(tls_ca).read_bytes()
    except OSError as exc:
        raise OSError(f"tls_ca {str(tls_ca)!r}: cannot read the CA file ({exc.strerror or exc})") from None


def channel_for(
    target: str,
    tls: bool = False,
    root_certificates: bytes | None = None,
    tls_ca: PathLike | None = None,
) -> grpc.Channel:
    """A channel to `target`: TLS when `tls`, `root_certificates` (PEM bytes) or `tls_ca` (a PEM
    file of a private CA) is given (no CA: the system's), plain otherwise."""
    options = CHANNEL_OPTIONS
    roots = read_ca(tls_ca, root_certificates)
    if tls or roots:
        return grpc.secure_channel(target, grpc.ssl_channel_credentials(roots), options)
    return grpc.insecure_channel(target, options)


class SynthClient:
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
        self.channel = channel_for(target, tls, root_certificates, tls_ca)
        self.stub = pb_grpc.SynthStub(self.channel)
        self.metadata = [("authorization", f"Bearer {token}")] if token else []
        self.backoff = backoff or Backoff()

    def __enter__(self) -> SynthClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def wait_ready(self, timeout: float = 30.0) -> None:
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def list_voices(self, timeout: float | None = 30.0) -> list[dict[str, Any]]:
        reply = self._retry(
            lambda: self.stub.ListVoices(pb.ListVoicesRequest(), timeout=timeout, metadata=self.metadata)
        )
        return [voice_dict(v) for v in reply.voices]

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
    ) -> Iterator[TurnEvent | SummaryEvent]:
        request = build_request(dialog, voices, conversation_id, seed, sample_format, stream_only)
        return self._stream(lambda: self.stub.Synthesize(request, timeout=timeout, metadata=self.metadata))

    def get_conversation(
        self, conversation_id: str, *, timeout: float | None = None
    ) -> Iterator[TurnEvent | SummaryEvent]:
        """A conversation already in the server's dataset, streamed like `synthesize` streams it
        (NOT_FOUND, as InvalidRequest, when the dataset does not list it)."""
        request = pb.GetConversationRequest(conversation_id=conversation_id)
        return self._stream(
            lambda: self.stub.GetConversation(request, timeout=timeout, metadata=self.metadata)
        )

    def _stream(self, start: Any) -> Iterator[TurnEvent | SummaryEvent]:
        for attempt in range(self.backoff.attempts):
            call = start()
            assembler = EventAssembler()
            received = False
            try:
                for message in call:
                    received = True
                    event = assembler.feed(message)
                    if event is not None:
                        yield event
                return
            except grpc.RpcError as exc:
                if received or exc.code() not in RETRYABLE or attempt + 1 == self.backoff.attempts:
                    raise translate(exc) from None
                time.sleep(self.backoff.delay(attempt))
            finally:
                call.cancel()  # no-op when finished; stops the server's work if we were abandoned

    def _retry(self, fn: Any) -> Any:
        for attempt in range(self.backoff.attempts):
            try:
                return fn()
            except grpc.RpcError as exc:
                if exc.code() not in RETRYABLE or attempt + 1 == self.backoff.attempts:
                    raise translate(exc) from None
                time.sleep(self.backoff.delay(attempt))
        raise AssertionError("unreachable")
