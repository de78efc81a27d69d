"""The asyncio client against a real server."""

from __future__ import annotations

import asyncio

from synth_client import AsyncSynthClient
from tests.server.serving import DIALOG, target


def test_async_client(server):
    async def go():
        async with AsyncSynthClient(target(server)) as c:
            voices = await c.list_voices()
            events = [e async for e in c.synthesize(DIALOG, conversation_id="async_one", seed=3)]
            return voices, events

    voices, events = asyncio.run(go())
    assert len(voices) == 18
    assert [e.turn_id for e in events[:-1]] == [0, 1, 2] and events[-1].metadata["seed"] == 3
