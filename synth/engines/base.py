"""The engine interface: a batch of (text, voice) requests in, one waveform per request out.

Batching is in the interface from the start so that a GPU engine can run one forward pass for
many turns; an engine that cannot batch simply loops."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..domain import Voice
from ..words import Words


@dataclass(frozen=True)
class SynthesisRequest:
    """One text to speak with one voice of the engine's catalog. `seed` draws the engine's
    sampling noise (Piper's VITS noise), so that the audio is a function of text, voice and seed
    whatever the process or batch; None is the engine's fixed default. An engine that samples
    nothing ignores it."""

    text: str
    voice: Voice
    seed: int | None = None


@dataclass(frozen=True)
class EngineAudio:
    """Float32 mono waveform. `sample_rate` may be fractional: a vocal-tract-scaled voice reports
    the rate at which its samples must be read to shift pitch and formants. An engine that knows
    where its symbols are (VITS predicts a duration for each) gives the words of the request's
    text with their times."""

    samples: np.ndarray
    sample_rate: float
    words: Words | None = None  # the request's words, in seconds from the start of `samples`


@runtime_checkable
class Engine(Protocol):
    """What every engine does: list its voices, speak a batch of requests, describe itself."""

    name: str
    model: str

    def voices(self) -> list[Voice]:
        """Every voice this engine can speak with."""
        ...

    def synthesize(self, requests: Sequence[SynthesisRequest]) -> list[EngineAudio]:
        """One EngineAudio per request, in request order."""
        ...

    def describe(self) -> dict[str, object]:
        """Engine, model and settings, recorded in metadata for reproducibility."""
        ...

    @property
    def deterministic(self) -> bool:
        """True when a text and voice give the same audio whatever the request's seed (no sampling
        noise): then a second synthesis, even with another seed, cannot fix a turn the ASR check
        or a quality gate rejects."""
        ...

    def voice_distance(self, a: Voice, b: Voice) -> float:
        """How different two voices of this engine sound, 0 (same) to 1 (different people).
        Casting keeps the speakers of one conversation apart by it."""
        ...


def speaker_distance(a: Voice, b: Voice) -> float:
    """The distance of voices that are each a different person (a multi-speaker model's
    speakers, recorded speakers): 1.0 between any two, 0.0 to itself."""
    return 0.0 if (a.model, a.speaker) == (b.model, b.speaker) else 1.0
