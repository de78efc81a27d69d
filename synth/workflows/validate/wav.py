"""One audio file of a conversation: a turn's, event's or probe's WAV there, readable, 16 kHz mono
PCM16 with samples (the per-file check the conversation's records and its totals share)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from ...audio import SAMPLE_RATE
from .problems import Place, Problem


@dataclass(frozen=True)
class WavCheck:
    """A WAV's problems and its duration (None when it cannot be read)."""

    seconds: float | None
    problems: list[Problem] = field(default_factory=list)


def check_wav(path: Path, at: Place) -> WavCheck:
    """A turn's, event's or probe's WAV: there, readable, 16 kHz mono PCM16 WAV with samples."""
    if not path.is_file():
        return WavCheck(None, [at.error("missing")])
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile's errors: unreadable or not audio
        return WavCheck(None, [at.error(f"unreadable audio ({exc})")])
    wrong = []
    if info.format != "WAV":
        wrong.append(f"format {info.format}")
    if info.samplerate != SAMPLE_RATE:
        wrong.append(f"{info.samplerate} Hz")
    if info.channels != 1:
        wrong.append(f"{info.channels} channels")
    if info.subtype != "PCM_16":
        wrong.append(f"subtype {info.subtype}")
    if info.frames == 0:
        wrong.append("no samples")
    problems = (
        [at.error("expected 16 kHz mono PCM16 WAV with audio, got " + ", ".join(wrong))] if wrong else []
    )
    return WavCheck(info.frames / info.samplerate if info.samplerate else None, problems)
