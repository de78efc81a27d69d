"""Rendering turns: a text spoken in a voice becomes 16 kHz audio with its word timings.

A turn is split into sentence chunks (the engine's batches stay short and a batching engine runs
the chunks of many turns in one forward pass); each chunk is resampled from the engine's rate,
trimmed to its speech, and the chunks are joined with short pauses, padded with TURN_PAD_SEC of
silence at each end and loudness-normalized as a whole. Word timings move with the audio.

With `fullband_rate` (24 kHz for the conversation audio that Mimi-based trainers read), each
chunk is also resampled once from the engine's own rate to that rate, cut at the same instants,
joined, padded and scaled by the same gain: the same turn, full band, aligned with the 16 kHz
one (never resampled up from it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..audio import PAUSE_SEC, SAMPLE_RATE, capped, join, loudness_gain, resample, silence_bounds
from ..dialogs.text import split_sentences
from ..domain import Voice
from ..engines.base import Engine, SynthesisRequest
from ..errors import Stopped
from ..seeding import noise_seed
from ..words import Words, WordTiming, regroup, shift

TURN_PAD_SEC = 0.1  # silence before and after each turn's speech


@dataclass(frozen=True)
class Piece:
    """One sentence chunk of a turn: its text, its trimmed audio at the renderer's rate and its
    word timings (seconds from the chunk's start; None when the engine gives none)."""

    text: str
    audio: np.ndarray
    words: Words | None
    full: np.ndarray | None = None  # the same chunk at the full-band rate


@dataclass(frozen=True)
class Spoken:
    """A finished turn (or backchannel): its audio at the dataset rate, its word timings (seconds
    from its start), and the same audio at the full-band rate when asked for."""

    audio: np.ndarray
    words: Words | None
    full: np.ndarray | None = None

    def cut(self, lo: int, hi: int, rate: int, full_rate: int | None) -> Spoken:
        """The audio between samples lo and hi (of the dataset rate), both tracks."""
        full = None
        if self.full is not None and full_rate:
            f_lo, f_n = round(lo * full_rate / rate), round((hi - lo) * full_rate / rate)
            full = _fit(self.full[f_lo : f_lo + f_n], f_n)
        return Spoken(self.audio[lo:hi], self.words, full)


class TurnRenderer:
    """Speaks texts in voices with one engine; holds no state between calls, so it is safe to
    share between threads if the engine is."""

    def __init__(
        self,
        engine: Engine,
        max_chunk_chars: int = 400,
        sample_rate: int = SAMPLE_RATE,
        fullband_rate: int | None = None,
    ):
        self.engine = engine
        self.max_chunk_chars = max_chunk_chars
        self.sample_rate = sample_rate
        self.fullband_rate = fullband_rate

    def render(
        self,
        text: str,
        voice: Voice,
        should_stop: Callable[[], bool] | None = None,
        seed: int | None = None,
    ) -> np.ndarray:
        """Speak one turn (see `render_many`)."""
        return self.render_many([(text, voice)], should_stop, [seed])[0]

    def render_many(
        self,
        turns: list[tuple[str, Voice]],
        should_stop: Callable[[], bool] | None = None,
        seeds: Sequence[int | None] | None = None,
    ) -> list[np.ndarray]:
        """Speak turns in one engine call (a batching engine runs them in one forward pass)."""
        return [self.finish(ps).audio for ps in self.pieces(turns, should_stop, seeds)]

    def pieces(
        self,
        turns: list[tuple[str, Voice]],
        should_stop: Callable[[], bool] | None = None,
        seeds: Sequence[int | None] | None = None,
    ) -> list[list[Piece]]:
        """Per turn, its sentence chunks as trimmed audio with their word timings. With
        `should_stop` (a caller whose deadline may pass), chunks go to the engine one call each
        and Stopped is raised between them. `seeds` (one per turn; None: the engine's default)
        draw the engine's sampling noise, each chunk its own seed derived from its turn's."""
        rate = self.sample_rate
        requests, owner = [], []
        for i, (text, voice) in enumerate(turns):
            seed = seeds[i] if seeds is not None else None
            for j, chunk in enumerate(split_sentences(text, self.max_chunk_chars)):
                requests.append(SynthesisRequest(chunk, voice, chunk_seed(seed, j)))
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
        fr = self.fullband_rate
        for i, request, audio in zip(owner, requests, audios):
            resampled = resample(audio.samples, audio.sample_rate, rate)
            lo, hi = silence_bounds(resampled, rate, 0.03)
            words = None if audio.words is None else shift(audio.words, -lo / rate, 0.0, (hi - lo) / rate)
            full = None
            if fr:
                native = resample(audio.samples, audio.sample_rate, fr)
                f_lo, f_n = round(lo * fr / rate), round((hi - lo) * fr / rate)
                full = _fit(native[f_lo : f_lo + f_n], f_n)
            pieces[i].append(Piece(request.text, resampled[lo:hi], words, full))
        return pieces

    def finish(self, pieces: list[Piece]) -> Spoken:
        """A turn's audio from its chunks (short pauses between, padding around, loudness) and
        its word timings from theirs (None unless every chunk has them). A chunk the engine
        left silent keeps its words, zero-length, where it would have been."""
        rate = self.sample_rate
        pieces = self._edges(pieces)
        spoken = [p.audio for p in pieces if p.audio.size]
        if not spoken:
            return Spoken(np.zeros(0, dtype=np.float32), None)
        pad_n, pause_n = int(rate * TURN_PAD_SEC), int(rate * PAUSE_SEC)
        pad = np.zeros(pad_n, dtype=np.float32)
        joined = np.concatenate([pad, join(spoken, rate), pad])
        gain = loudness_gain(joined, rate)
        audio = joined.astype(np.float32, copy=True) if gain == 1.0 else (joined * gain).astype(np.float32)
        full = self._full(pieces, gain)
        if any(p.words is None for p in pieces):
            return Spoken(audio, None, full)
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
        return Spoken(audio, regroup(" ".join(p.text for p in pieces), words), full)

    def _edges(self, pieces: list[Piece]) -> list[Piece]:
        """The turn's first and last chunks cut to their speech at the outer edge, so that the
        turn's own padding is all the silence it starts and ends with (TURN_PAD_SEC); between
        sentences each chunk keeps the little silence it had."""
        spoken = [i for i, p in enumerate(pieces) if p.audio.size]
        if not spoken:
            return pieces
        out = list(pieces)
        first, last = spoken[0], spoken[-1]
        lo = silence_bounds(out[first].audio, self.sample_rate, 0.0)[0]
        out[first] = self._cut(out[first], lo, out[first].audio.shape[0])
        hi = silence_bounds(out[last].audio, self.sample_rate, 0.0)[1]
        out[last] = self._cut(out[last], 0, max(hi, 1))
        return out

    def _cut(self, piece: Piece, lo: int, hi: int) -> Piece:
        rate, fr = self.sample_rate, self.fullband_rate
        words = None if piece.words is None else shift(piece.words, -lo / rate, 0.0, (hi - lo) / rate)
        full = None
        if piece.full is not None and fr:
            f_lo, f_n = round(lo * fr / rate), round((hi - lo) * fr / rate)
            full = _fit(piece.full[f_lo : f_lo + f_n], f_n)
        return Piece(piece.text, piece.audio[lo:hi], words, full)

    def _full(self, pieces: list[Piece], gain: float) -> np.ndarray | None:
        """The full-band track of a finished turn: the same pauses, padding and gain (lowered if
        its own peaks need it)."""
        fr = self.fullband_rate
        if not fr or any(p.full is None for p in pieces):
            return None
        chunks = [p.full for p in pieces if p.audio.size and p.full is not None]
        pad = np.zeros(int(fr * TURN_PAD_SEC), dtype=np.float32)
        joined = np.concatenate([pad, join(chunks, fr), pad])
        return (joined * capped(joined, gain)).astype(np.float32)


def chunk_seed(seed: int | None, index: int) -> int | None:
    """The noise seed of a turn's index-th sentence chunk (None stays None)."""
    return None if seed is None else noise_seed(seed, "", f"chunk:{index}")


def _fit(samples: np.ndarray, n: int) -> np.ndarray:
    """Exactly n samples: cut, or padded with silence (a resampler's length may differ by one)."""
    if samples.shape[0] >= n:
        return samples[:n]
    return np.concatenate([samples, np.zeros(n - samples.shape[0], dtype=np.float32)])
