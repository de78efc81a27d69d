"""Cheap signal checks, pure numpy: the fraction of clipped samples, the speech's loudness, the
silence before and after the speech, and the speaking rate (the text's words per second of
speech). They catch what a model-based score may miss: a turn cut short, a long silent tail,
audio driven into full scale."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..asr.wer import normalize
from ..audio import active_dbfs, silence_bounds
from .base import SAMPLE_RATE, Score, TurnAudio

VERSION = "1"
CLIP_LEVEL = 0.999  # |sample| at or above this is full scale (PCM16's 32767/32768 is 0.99997)
SILENT_DB = -100.0  # the loudness stored for a turn with no speech at all


def score_signal(samples: np.ndarray, text: str, rate: int = SAMPLE_RATE) -> Score:
    """The signal scores of one turn (see the module's docstring)."""
    samples = np.asarray(samples, dtype=np.float32)
    n = len(samples)
    duration = n / rate
    clipped = float(np.count_nonzero(np.abs(samples) >= CLIP_LEVEL)) / n if n else 0.0
    start, end = silence_bounds(samples, rate, 0.0)
    if end <= start:  # nothing but silence
        lead = trail = duration
        speech = 0.0
    else:
        lead, trail, speech = start / rate, (n - end) / rate, (end - start) / rate
    loudness = active_dbfs(samples, rate)
    words = len(normalize(text).split())
    return {
        "clipped": round(clipped, 6),
        "loudness_db": round(max(float(loudness), SILENT_DB), 2),
        "lead_silence_sec": round(lead, 3),
        "trail_silence_sec": round(trail, 3),
        "words_per_sec": round(words / speech, 3) if speech > 0 else 0.0,
    }


class SignalScorer:
    """The signal checks (score_signal) of each turn; no model, no state."""

    name = "signal"
    version = VERSION

    def score(self, batch: Sequence[TurnAudio]) -> list[Score]:
        return [score_signal(t.samples, t.text) for t in batch]
