"""The one retry rule of both clients: which failures are tried again, how often, and that a
stream is never started again once a message of it arrived (a retry would repeat its turns)."""

from __future__ import annotations

import asyncio
import random

import grpc
import pytest

from synth_client import Backoff, DeadlineExceeded, InvalidRequest, SynthRpcError, Unavailable
from synth_client.retry import retried, retried_async, retried_call, retry_delay

QUICK = Backoff(attempts=3, initial=0.001, maximum=0.002, rng=random.Random(0))


def busy() -> SynthRpcError:
    return Unavailable(grpc.StatusCode.UNAVAILABLE, "busy")


def test_which_failures_are_tried_again():
    backoff = Backoff(attempts=3, initial=0.5, maximum=8.0, rng=random.Random(1))
    for code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
        assert 0 <= retry_delay(backoff, Unavailable(code, "x"), 1, received=False) <= 1.0
    with pytest.raises(Unavailable):  # the last attempt
        retry_delay(backoff, busy(), 2, received=False)
    with pytest.raises(Unavailable):  # a stream that had sent a message
        retry_delay(backoff, busy(), 0, received=True)
    with pytest.raises(InvalidRequest):
        retry_delay(backoff, InvalidRequest(grpc.StatusCode.INVALID_ARGUMENT, "turns[1]"), 0, False)
    with pytest.raises(DeadlineExceeded):
        retry_delay(backoff, DeadlineExceeded(grpc.StatusCode.DEADLINE_EXCEEDED, "late"), 0, False)


def _calls(plan: list[str]):
    """Each start() makes the next call of `plan`: 'busy' fails before its first message,
    'late' after one, 'ok' sends two messages."""
    made: list[str] = []

    def start():
        kind = plan[len(made)]
        made.append(kind)
        if kind == "busy":
            raise busy()
        yield f"{kind}-1"
        if kind == "late":
            raise busy()
        yield f"{kind}-2"

    return start, made


def test_a_stream_is_started_again_only_before_its_first_message():
    start, made = _calls(["busy", "busy", "ok"])
    assert list(retried(start, QUICK)) == ["ok-1", "ok-2"] and len(made) == 3
    start, made = _calls(["busy", "late", "ok"])
    got: list[str] = []
    with pytest.raises(Unavailable):
        got.extend(retried(start, QUICK))
    assert got == ["late-1"] and made == ["busy", "late"]
    start, made = _calls(["busy", "busy", "busy", "ok"])
    with pytest.raises(Unavailable):
        list(retried(start, QUICK))
    assert len(made) == QUICK.attempts


def test_the_asyncio_loop_follows_the_same_rule():
    def async_start(plan):
        start, made = _calls(plan)

        async def call():
            for message in start():
                yield message

        return call, made

    async def collect(plan):
        start, made = async_start(plan)
        got: list[str] = []
        try:
            async for message in retried_async(start, QUICK):
                got.append(message)
        except SynthRpcError as exc:
            return got, made, type(exc)
        return got, made, None

    assert asyncio.run(collect(["busy", "ok"])) == (["ok-1", "ok-2"], ["busy", "ok"], None)
    assert asyncio.run(collect(["late", "ok"])) == (["late-1"], ["late"], Unavailable)


def test_a_unary_call_is_retried_and_gives_its_reply():
    answers = iter([busy(), busy(), "voices"])

    def call():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert retried_call(call, QUICK) == "voices"
