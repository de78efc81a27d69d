"""The deterministic sample of `--score-sample`: a turn is in it when a hash of (seed,
conversation id, turn id) falls below the fraction, so the same turns are chosen on every run
and machine, whatever the order or the shard that meets them, and a larger fraction scores a
superset of a smaller one's turns."""

from __future__ import annotations

import hashlib


def in_sample(conversation_id: str, turn_id: int, fraction: float, seed: int = 0) -> bool:
    """Whether this turn is in the `fraction` sample drawn with `seed`."""
    if fraction >= 1.0:
        return True
    digest = hashlib.sha256(f"{seed}\0{conversation_id}\0{turn_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction
