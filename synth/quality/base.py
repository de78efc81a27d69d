"""What every scorer shares: the turn it scores (`TurnAudio`), the `Scorer` protocol, and the
stored keys with the direction in which each is worse (the report's worst turns, the gates and
the curriculum filters read it from here).

A scorer is opt-in by name and carries a version string; the turn's stored `quality` block names
each scorer that ran with its version (docs/quality.md), so scores of two versions are never
mixed silently and `synth score` re-scores only what is missing or stale."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

SAMPLE_RATE = 16_000

Score = dict[str, float | str]

# Each scorer's stored keys, in the order the block lists them.
SCORER_KEYS: dict[str, tuple[str, ...]] = {
    "intelligibility": ("wer", "cer", "asr_text"),
    "dnsmos": ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"),
    "speaker": ("speaker_sim", "speaker_sim_other"),
    "signal": ("clipped", "loudness_db", "lead_silence_sec", "trail_silence_sec", "words_per_sec"),
}
SCORERS = tuple(SCORER_KEYS)
KEYS = tuple(k for keys in SCORER_KEYS.values() for k in keys)
# Scores where a higher value is a worse turn; for every other numeric score lower is worse
# (MOS, similarity to its own voice). Loudness and speaking rate have no better direction: they
# are listed as lower-worse, which finds quiet and slow turns.
HIGHER_IS_WORSE = frozenset(
    {"wer", "cer", "speaker_sim_other", "clipped", "lead_silence_sec", "trail_silence_sec", "takes", "take"}
)
TEXT_KEYS = frozenset({"asr_text"})


def higher_is_worse(key: str) -> bool:
    """Whether a higher value of this stored key is a worse turn (HIGHER_IS_WORSE)."""
    return key in HIGHER_IS_WORSE


@dataclass(frozen=True)
class TurnAudio:
    """One turn to score: 16 kHz mono float32 `samples`, the `text` it should say, its `voice`
    id and `speaker`, and the voices of the other speakers of its conversation (for the
    speaker-confusion score). `conversation_id` and `turn_id` name it in errors."""

    samples: np.ndarray
    text: str
    voice: str | None = None
    speaker: str = ""
    other_voices: tuple[str, ...] = ()
    conversation_id: str = ""
    turn_id: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def duration_sec(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    def where(self) -> str:
        return f"{self.conversation_id or 'conversation'} turn {self.turn_id}"


@runtime_checkable
class Scorer(Protocol):
    """Scores a batch of turns: one dict per turn, its keys those of SCORER_KEYS[name] (a key may
    be left out where it means nothing, e.g. speaker_sim_other in a monologue). Numbers are
    plain floats, rounded to a few decimals (the stored figures are what an independent run prints)."""

    name: str
    version: str

    def score(self, batch: Sequence[TurnAudio]) -> list[Score]: ...
