"""The asyncio client (grpc.aio), same API as SynthClient with `async for`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .calls import Calls
from .channel import PathLike, channel_for
from .events import EventAssembler, SummaryEvent, TurnEvent
from .retry import Backoff, retried_async, retried_call_async


class AsyncSynthClient(Calls[AsyncIterator[TurnEvent | SummaryEvent], Awaitable[list[dict[str, Any]]]]):
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
        super().__init__(channel_for(target, tls, root_certificates, tls_ca, aio=True), token, backoff)

    async def __aenter__(self) -> AsyncSynthClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    async def _unary(self, call: Callable[[], Any], then: Callable[[Any], Any]) -> Any:
        return then(await retried_call_async(call, self.backoff))

    async def _stream(self, start: Callable[[], Any]) -> AsyncIterator[TurnEvent | SummaryEvent]:
        assembler = EventAssembler()
        async with contextlib.aclosing(retried_async(start, self.backoff)) as messages:
            async for message in messages:
                event = assembler.feed(message)
                if event is not None:
                    yield event
