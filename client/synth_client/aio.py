"""The asyncio client (grpc.aio), same API as SynthClient with `async for`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import grpc
import grpc.aio

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
from .sync import CHANNEL_OPTIONS, PathLike, read_ca
from .v1 import synth_pb2 as pb
from .v1 import synth_pb2_grpc as pb_grpc


class AsyncSynthClient:
    """
    async with AsyncSynthClient("localhost:50051") as c:
        async for event in c.synthesize(dialog):
            ...
    """

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
        options = CHANNEL_OPTIONS
        roots = read_ca(tls_ca, root_certificates)
        if tls or roots:
            self.channel = grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(roots), options)
        else:
            self.channel = grpc.aio.insecure_channel(target, options)
        self.stub = pb_grpc.SynthStub(self.channel)
        self.metadata = [("authorization", f"Bearer {token}")] if token else []
        self.backoff = backoff or Backoff()

    async def __aenter__(self) -> AsyncSynthClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    async def list_voices(self, timeout: float | None = 30.0) -> list[dict[str, Any]]:
        for attempt in range(self.backoff.attempts):
            try:
                reply = await self.stub.ListVoices(
                    pb.ListVoicesRequest(), timeout=timeout, metadata=self.metadata
                )
                return [voice_dict(v) for v in reply.voices]
            except grpc.RpcError as exc:
                if exc.code() not in RETRYABLE or attempt + 1 == self.backoff.attempts:
                    raise translate(exc) from None
                await asyncio.sleep(self.backoff.delay(attempt))
        raise AssertionError("unreachable")

    async def synthesize(
        self,
        dialog: DialogLike,
        voices: Mapping[str, str] | None = None,
        *,
        conversation_id: str | None = None,
        seed: int | None = None,
        sample_format: str | None = None,
        stream_only: bool = False,
        timeout: float | None = None,
    ) -> AsyncIterator[TurnEvent | SummaryEvent]:
        request = build_request(dialog, voices, conversation_id, seed, sample_format, stream_only)
        for attempt in range(self.backoff.attempts):
            call = self.stub.Synthesize(request, timeout=timeout, metadata=self.metadata)
            assembler = EventAssembler()
            received = False
            try:
                async for message in call:
                    received = True
                    event = assembler.feed(message)
                    if event is not None:
                        yield event
                return
            except grpc.RpcError as exc:
                if received or exc.code() not in RETRYABLE or attempt + 1 == self.backoff.attempts:
                    raise translate(exc) from None
                await asyncio.sleep(self.backoff.delay(attempt))
            finally:
                call.cancel()
