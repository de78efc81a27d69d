"""Speaker consistency: how alike the turn sounds to its own voice, and how alike to the other
speakers' voices of its conversation. Cosine similarity of speaker-encoder embeddings
(synth.quality.speaker_encoder; 1 the same, about 0.9 two takes of one voice, below 0.7 other
people) of the turn against each voice's reference embedding (the voice speaking the reference
sentences, synth.voices.encoder.voice_embeddings, measured once per catalog).

`speaker_sim` low: the turn does not sound like its voice (a garbled take, noise, another
voice). `speaker_sim_other` high: it sounds like another speaker of the conversation, so a
listener (or a model) may confuse the two; left out where the conversation has one voice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import SynthError
from .base import Score, TurnAudio
from .speaker_encoder import ENCODER

VERSION = "1"


class SpeakerScorer:
    """`references`: voice id -> unit embedding (256 floats) of every voice the turns use;
    `encoder`: a SpeakerEncoder (made when None)."""

    name = "speaker"

    def __init__(self, references: Mapping[str, np.ndarray], encoder: Any | None = None):
        if encoder is None:
            from .speaker_encoder import SpeakerEncoder

            encoder = SpeakerEncoder()
        self.encoder = encoder
        self.references = {k: np.asarray(v, dtype=np.float32) for k, v in references.items()}
        self.version = f"{VERSION}/{ENCODER}"

    def _reference(self, voice: str | None, turn: TurnAudio) -> np.ndarray:
        ref = self.references.get(voice or "")
        if ref is None:
            raise SynthError(
                f"{turn.where()}: no reference embedding for voice {voice!r} (the speaker scorer "
                "compares each turn with its voice speaking the reference sentences)"
            )
        return ref

    def score(self, batch: Sequence[TurnAudio]) -> list[Score]:
        out: list[Score] = []
        for turn in batch:
            own = self._reference(turn.voice, turn)
            others = [self._reference(v, turn) for v in turn.other_voices if v != turn.voice]
            try:
                embedding = self.encoder.embed(turn.samples)
            except SynthError:  # nothing but silence: like no voice at all
                embedding = None
            row: Score = {"speaker_sim": _sim(embedding, own)}
            if others:
                row["speaker_sim_other"] = max(_sim(embedding, o) for o in others)
            out.append(row)
        return out


def _sim(embedding: np.ndarray | None, reference: np.ndarray) -> float:
    if embedding is None:
        return 0.0
    return round(float(np.dot(embedding, reference)), 4)
