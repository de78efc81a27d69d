"""When a failed call is tried again, written once for the sync and asyncio clients: with
exponential backoff and full jitter, on UNAVAILABLE and RESOURCE_EXHAUSTED only, and only before
the first message of a stream arrived (so a retry never duplicates turns). Any other failure is
raised as the client's exception for its code (synth_client.errors)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from .errors import translate

M = TypeVar("M")
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


@dataclass
class Backoff:
    """Exponential backoff with full jitter for UNAVAILABLE and RESOURCE_EXHAUSTED."""

    attempts: int = 8
    initial: float = 0.2
    maximum: float = 8.0
    multiplier: float = 2.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.maximum, self.initial * self.multiplier**attempt))


def retry_delay(backoff: Backoff, exc: grpc.RpcError, attempt: int, received: bool) -> float:
    """How long to wait before trying a failed call again; raises the client's exception for
    `exc` when it is not tried again (another code, a message already received, the last attempt).
    Called while `exc` is being handled."""
    if received or exc.code() not in RETRYABLE or attempt + 1 == backoff.attempts:
        raise translate(exc) from None
    return backoff.delay(attempt)


def _cancel(call: Any) -> None:
    """Cancel a streaming call: a no-op when it finished; stops the server's work if the stream
    was abandoned."""
    cancel = getattr(call, "cancel", None)
    if cancel is not None:
        cancel()


def retried(start: Callable[[], Iterable[M]], backoff: Backoff) -> Iterator[M]:
    """The messages of the call `start()` makes, started again by the rule above."""
    for attempt in range(backoff.attempts):
        call = None
        received = False
        try:
            call = start()
            for message in call:
                received = True
                yield message
            return
        except grpc.RpcError as exc:
            time.sleep(retry_delay(backoff, exc, attempt, received))
        finally:
            _cancel(call)


async def retried_async(start: Callable[[], AsyncIterable[M]], backoff: Backoff) -> AsyncIterator[M]:
    """`retried` for grpc.aio calls."""
    for attempt in range(backoff.attempts):
        call = None
        received = False
        try:
            call = start()
            async for message in call:
                received = True
                yield message
            return
        except grpc.RpcError as exc:
            await asyncio.sleep(retry_delay(backoff, exc, attempt, received))
        finally:
            _cancel(call)


def retried_call(call: Callable[[], M], backoff: Backoff) -> M:
    """The reply of the unary call `call()` makes, tried again by the same rule."""
    with contextlib.closing(retried(lambda: (call(),), backoff)) as replies:
        for reply in replies:
            return reply
    raise AssertionError("unreachable")  # no attempts at all


async def retried_call_async(call: Callable[[], Awaitable[M]], backoff: Backoff) -> M:
    """`retried_call` for grpc.aio calls."""

    async def once() -> AsyncIterator[M]:
        yield await call()

    async with contextlib.aclosing(retried_async(once, backoff)) as replies:
        async for reply in replies:
            return reply
    raise AssertionError("unreachable")  # no attempts at all
