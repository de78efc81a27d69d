"""Which scorers run, declared once (synth.options: the flags of `synth score` follow), and the
scorers built from it. Every scorer is opt-in by name; the heavy ones load their models when
built, so a config naming none costs nothing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..options import option
from .base import SCORERS, Scorer


def parse_scorers(text: str | Sequence[str]) -> tuple[str, ...]:
    """'intelligibility,dnsmos' (or 'all') -> the scorers' names, in the canonical order."""
    names = [n.strip() for n in text.split(",")] if isinstance(text, str) else [str(n) for n in text]
    names = [n for n in names if n]
    if names == ["all"]:
        return SCORERS
    unknown = [n for n in names if n not in SCORERS]
    if unknown:
        raise ConfigError(
            "scorers", f"unknown scorer {unknown[0]!r}: choose from {', '.join(SCORERS)} (or all)", text
        )
    return tuple(n for n in SCORERS if n in names)


@dataclass(frozen=True)
class QualityConfig:
    """The per-turn quality scores to compute (docs/quality.md). `score_sample` < 1 scores a
    deterministic sample of the turns (by conversation and turn id, with `seed`); where this
    config joins a command that already has a --seed, skip `seed` there and pass that one."""

    scorers: tuple[str, ...] = option(
        SCORERS,
        parse=parse_scorers,
        text=",".join,
        metavar="NAMES",
        help="the scorers to run, comma-separated: intelligibility (WER/CER of Whisper tiny.en's "
        "transcript), dnsmos (DNSMOS P.835 SIG/BAK/OVRL and P.808), speaker (similarity to its voice "
        "and to the other voices), signal (clipping, loudness, edge silence, speaking rate), or all",
    )
    score_sample: float = option(
        1.0, metavar="FRACTION", help="score this fraction of the turns (a deterministic sample)"
    )
    seed: int = option(0, help="seed of the --score-sample draw")

    def __post_init__(self) -> None:
        object.__setattr__(self, "scorers", parse_scorers(self.scorers))
        if not 0.0 < self.score_sample <= 1.0:
            raise ConfigError("score_sample", "must be in (0, 1]", self.score_sample)


def build_scorers(
    config: QualityConfig,
    *,
    recognizer: Any | None = None,
    references: Mapping[str, np.ndarray] | None = None,
    encoder: Any | None = None,
) -> list[Scorer]:
    """The scorers `config` names, in the canonical order, their models loaded. `recognizer`: a
    synth.asr.recognizer.Recognizer to share (default the embedded tiny.en); `references`: voice
    id -> reference embedding, needed by `speaker` (synth.voices.references gives them);
    `encoder`: a SpeakerEncoder to share."""
    out: list[Scorer] = []
    for name in config.scorers:
        if name == "intelligibility":
            from .intelligibility import IntelligibilityScorer

            out.append(IntelligibilityScorer(recognizer))
        elif name == "dnsmos":
            from .dnsmos import DnsmosScorer

            out.append(DnsmosScorer())
        elif name == "speaker":
            from .speaker import SpeakerScorer

            if references is None:
                raise ConfigError("scorers", "the speaker scorer needs the voices' reference embeddings")
            out.append(SpeakerScorer(references, encoder))
        elif name == "signal":
            from .signal import SignalScorer

            out.append(SignalScorer())
    return out
