"""The engine interface: a batch of (text, voice) requests in, one waveform per request out.

Batching is in the interface from the start so that a GPU engine can run one forward pass for
many turns; an engine that cannot batch simply loops."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from ..domain import Voice


@dataclass(frozen=True)
class SynthesisRequest:
    text: str
    voice: Voice


@dataclass(frozen=True)
class EngineAudio:
    """Float32 mono waveform. `sample_rate` may be fractional: a vocal-tract-scaled voice reports
    the rate at which its samples must be read to shift pitch and formants."""

    samples: np.ndarray
    sample_rate: float


@runtime_checkable
class Engine(Protocol):
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
