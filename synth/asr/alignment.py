"""Forced alignment: word timings for speech whose transcript is known but whose producer cannot
say where the words are (recorded corpora, engines without durations), with the Whisper model
synth already ships for ASR (faster-whisper, offline).

Up to Whisper's 30 s window the transcript's own tokens are aligned to the audio by the model's
cross-attention (dynamic time warping over its alignment heads, as Whisper's word timestamps do,
but on the given text instead of a decoded one), so every word of the transcript gets a span.
Longer audio is transcribed with word timestamps and the recognized words are matched to the
transcript's (difflib); a word the recognizer missed shares the time between its neighbours."""

from __future__ import annotations

import difflib
import re
from typing import Any

import numpy as np

from ..audio import FLOOR_DBFS, FRAME_SEC, SAMPLE_RATE, SILENCE_DB
from ..words import Words, WordTiming, fill_gaps, monotonic
from .recognizer import Recognizer

WINDOW_SEC = 30.0


def silent_spans(
    audio: np.ndarray, rate: int = SAMPLE_RATE, min_sec: float = 0.03
) -> list[tuple[float, float]]:
    """Stretches of at least `min_sec` quieter than 40 dB under the loudest frame (10 ms frames)."""
    n = int(rate * FRAME_SEC)
    frames = audio[: audio.shape[0] // n * n].reshape(-1, n)
    if not frames.size:
        return []
    db = 20 * np.log10(np.maximum(np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)), 1e-10))
    quiet = db < max(float(db.max()) + SILENCE_DB, FLOOR_DBFS)
    spans, start = [], None
    for i, q in enumerate(np.append(quiet, False)):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if (i - start) * FRAME_SEC >= min_sec:
                spans.append((start * FRAME_SEC, i * FRAME_SEC))
            start = None
    return spans


def snap_to_speech(words: Words, audio: np.ndarray, rate: int = SAMPLE_RATE) -> Words:
    """Whisper's attention gives word edges on a 20 ms grid that often fall in the silence next
    to a word: a start inside a silent stretch moves to its end, an end to its start (the
    silence-aware adjustment of tools such as stable-ts)."""
    spans = silent_spans(audio, rate)
    if not spans:
        return words

    def inside(t: float) -> tuple[float, float] | None:
        for a, b in spans:
            if a <= t < b:
                return a, b
        return None

    out = []
    for w in words:
        start, end = w.start, w.end
        s = inside(start)
        if s is not None and s[1] < end:
            start = s[1]
        e = inside(end)
        if e is not None and e[0] > start:
            end = e[0]
        out.append(WordTiming(w.word, start, end))
    return tuple(out)


def _norm(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


class ForcedAligner:
    """Word timings of a transcript in its 16 kHz audio, from a loaded Recognizer's model."""

    def __init__(self, recognizer: Recognizer):
        from faster_whisper.tokenizer import Tokenizer

        self.recognizer = recognizer
        model = recognizer._model
        self._tokenizer = Tokenizer(
            model.hf_tokenizer,
            model.model.is_multilingual,
            task="transcribe",
            language=recognizer.language if model.model.is_multilingual else None,
        )

    def describe(self) -> dict[str, Any]:
        return {"method": "forced-alignment", "engine": "faster-whisper", "model": self.recognizer.model_name}

    def align(self, audio: np.ndarray, text: str) -> Words:
        """The words of `text` (split on whitespace) timed in `audio` (seconds from its start)."""
        words = text.split()
        if not words:
            return ()
        audio = np.asarray(audio, dtype=np.float32)
        duration = audio.shape[0] / SAMPLE_RATE
        with self.recognizer._lock:
            if duration <= WINDOW_SEC:
                timed = self._window(audio, words)
            else:
                timed = self._by_transcription(audio, words, duration)
        timed = tuple(WordTiming(w.word, min(w.start, duration), min(w.end, duration)) for w in timed)
        return monotonic(snap_to_speech(timed, audio))

    def _window(self, audio: np.ndarray, words: list[str]) -> Words:
        from faster_whisper.audio import pad_or_trim

        model = self.recognizer._model
        features = model.feature_extractor(audio)[..., :-1]
        num_frames = min(features.shape[-1], model.feature_extractor.nb_max_frames)
        encoder_output = model.encode(pad_or_trim(features))
        per_word = [self._tokenizer.encode(" " + w) for w in words]
        tokens = [t for ts in per_word for t in ts]
        (result,) = model.model.align(
            encoder_output, self._tokenizer.sot_sequence, [tokens], num_frames, median_filter_width=7
        )
        pairs = np.array(result.alignments)
        text_idx, time_idx = pairs[:, 0], pairs[:, 1]
        jumps = np.pad(np.diff(text_idx), (1, 0), constant_values=1).astype(bool)
        jump_times = time_idx[jumps] / model.tokens_per_second
        bounds = np.concatenate([[0], np.cumsum([len(ts) for ts in per_word])])
        last = len(jump_times) - 1
        return tuple(
            WordTiming(w, float(jump_times[min(a, last)]), float(jump_times[min(b, last)]))
            for w, a, b in zip(words, bounds[:-1], bounds[1:])
        )

    def _by_transcription(self, audio: np.ndarray, words: list[str], duration: float) -> Words:
        segments, _ = self.recognizer._model.transcribe(
            audio, language=self.recognizer.language, word_timestamps=True, condition_on_previous_text=False
        )
        heard = [w for s in segments for w in (s.words or [])]
        spans: list[list[float] | None] = [None] * len(words)
        matcher = difflib.SequenceMatcher(
            None, [_norm(w) for w in words], [_norm(h.word) for h in heard], autojunk=False
        )
        for a, b, size in matcher.get_matching_blocks():
            for k in range(size):
                spans[a + k] = [float(heard[b + k].start), float(heard[b + k].end)]
        return fill_gaps(words, spans, 0.0, duration)
