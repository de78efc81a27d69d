"""Rendering turns: a text spoken in a voice becomes 16 kHz audio with its word timings.

A turn is split into sentence chunks (the engine's batches stay short and a batching engine runs
the chunks of many turns in one forward pass); each chunk is resampled from the engine's rate,
trimmed to its speech, and the chunks are joined with short pauses, padded with TURN_PAD_SEC of
silence at each end and loudness-normalized as a whole. Word timings move with the audio."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..audio import PAUSE_SEC, SAMPLE_RATE, join, normalize_loudness, resample, silence_bounds
from ..dialogs.text import split_sentences
from ..domain import Voice
from ..engines.base import Engine, SynthesisRequest
from ..errors import SynthError
from ..words import Words, WordTiming, regroup, shift

TURN_PAD_SEC = 0.1  # silence before and after each turn's speech


@dataclass(frozen=True)
class Piece:
    """One sentence chunk of a turn: its text, its trimmed audio at the renderer's rate and its
    word timings (seconds from the chunk's start; None when the engine gives none)."""

    text: str
    audio: np.ndarray
    words: Words | None


class Stopped(SynthError):
    """Synthesis was stopped between sentence chunks because the caller went away."""


class TurnRenderer:
    """Speaks texts in voices with one engine; holds no state between calls, so it is safe to
    share between threads if the engine is."""

    def __init__(self, engine: Engine, max_chunk_chars: int = 400, sample_rate: int = SAMPLE_RATE):
        self.engine = engine
        self.max_chunk_chars = max_chunk_chars
        self.sample_rate = sample_rate

    def render(self, text: str, voice: Voice, should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        """Speak one turn (see `render_many`)."""
        return self.render_many([(text, voice)], should_stop)[0]

    def render_many(
        self, turns: list[tuple[str, Voice]], should_stop: Callable[[], bool] | None = None
    ) -> list[np.ndarray]:
        """Speak turns in one engine call (a batching engine runs them in one forward pass)."""
        return [self.finish(ps)[0] for ps in self.pieces(turns, should_stop)]

    def pieces(
        self, turns: list[tuple[str, Voice]], should_stop: Callable[[], bool] | None = None
    ) -> list[list[Piece]]:
        """Per turn, its sentence chunks as trimmed audio with their word timings. With
        `should_stop` (a caller whose deadline may pass), chunks go to the engine one call each
        and Stopped is raised between them."""
        rate = self.sample_rate
        requests, owner = [], []
        for i, (text, voice) in enumerate(turns):
            for chunk in split_sentences(text, self.max_chunk_chars):
                requests.append(SynthesisRequest(chunk, voice))
                owner.append(i)
        pieces: list[list[Piece]] = [[] for _ in turns]
        if should_stop is None:
            audios = self.engine.synthesize(requests)
        else:
            audios = []
            for request in requests:
                if should_stop():
                    raise Stopped("the caller stopped waiting (cancelled or past its deadline)")
                audios += self.engine.synthesize([request])
        for i, request, audio in zip(owner, requests, audios):
            full = resample(audio.samples, audio.sample_rate, rate)
            lo, hi = silence_bounds(full, rate, 0.03)
            words = None if audio.words is None else shift(audio.words, -lo / rate, 0.0, (hi - lo) / rate)
            pieces[i].append(Piece(request.text, full[lo:hi], words))
        return pieces

    def finish(self, pieces: list[Piece]) -> tuple[np.ndarray, Words | None]:
        """A turn's audio from its chunks (short pauses between, padding around, loudness) and
        its word timings from theirs (None unless every chunk has them). A chunk the engine
        left silent keeps its words, zero-length, where it would have been."""
        rate = self.sample_rate
        spoken = [p.audio for p in pieces if p.audio.size]
        if not spoken:
            return np.zeros(0, dtype=np.float32), None
        pad_n, pause_n = int(rate * TURN_PAD_SEC), int(rate * PAUSE_SEC)
        pad = np.zeros(pad_n, dtype=np.float32)
        audio = normalize_loudness(np.concatenate([pad, join(spoken, rate), pad]), rate)
        if any(p.words is None for p in pieces):
            return audio, None
        words: list[WordTiming] = []
        at, first = pad_n, True
        for p in pieces:
            if p.audio.size and not first:
                at += pause_n
            assert p.words is not None
            words += shift(p.words, at / rate, at / rate, (at + p.audio.size) / rate)
            if p.audio.size:
                at += p.audio.size
                first = False
        return audio, regroup(" ".join(p.text for p in pieces), words)
