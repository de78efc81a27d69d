"""Per-conversation random generators: casting, gaps and anything else drawn for a
conversation depend only on (seed, conversation id, purpose), never on the order of processing."""

from __future__ import annotations

import hashlib
import random


def conversation_rng(seed: int, conversation_id: str, purpose: str) -> random.Random:
    """A generator private to one conversation and one purpose, independent of run order."""
    digest = hashlib.sha256(f"{seed}:{purpose}:{conversation_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def noise_seed(seed: int, conversation_id: str, purpose: str) -> int:
    """The sampling-noise seed of one synthesis (a turn, a take, a backchannel, a probe: named by
    `purpose`), so that an engine's noise depends on (seed, conversation, purpose) alone, never on
    the process, worker or batch that speaks it; 63 bits."""
    digest = hashlib.sha256(f"{seed}:noise:{purpose}:{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1
