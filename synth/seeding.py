"""Per-conversation random generators: casting, gaps and anything else drawn for a
conversation depend only on (seed, conversation id, purpose), never on the order of processing."""

from __future__ import annotations

import hashlib
import random


def conversation_rng(seed: int, conversation_id: str, purpose: str) -> random.Random:
    """A generator private to one conversation and one purpose, independent of run order."""
    digest = hashlib.sha256(f"{seed}:{purpose}:{conversation_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))
