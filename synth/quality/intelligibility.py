"""Intelligibility: the word and character error rates of an ASR transcript of the turn against
the text it should say, both normalized as the ASR check normalizes them (synth.asr.wer). The
recognizer is faster-whisper (default the embedded Whisper tiny.en, offline): a turn the voice
garbles, cuts or fills with noise gets a high WER."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..asr.wer import edit_distance, normalize, wer
from .base import Score, TurnAudio

VERSION = "1"


def char_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in characters, reference length) of the normalized texts (spaces count)."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    return edit_distance(ref, hyp), len(ref)


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of the normalized texts (1.0 for any text against an empty one)."""
    errors, n = char_errors(reference, hypothesis)
    return errors / n if n else float(errors > 0)


class IntelligibilityScorer:
    """`recognizer`: a synth.asr.recognizer.Recognizer (shared with the ASR check where both
    run); made on first use from the embedded tiny.en when None."""

    name = "intelligibility"

    def __init__(self, recognizer: Any | None = None):
        if recognizer is None:
            from ..asr.recognizer import Recognizer

            recognizer = Recognizer()
        self.recognizer = recognizer
        described = recognizer.describe() if hasattr(recognizer, "describe") else {}
        model = described.get("model", "whisper")
        self.version = f"{VERSION}/{model}/beam{described.get('beam_size', 1)}"

    def score(self, batch: Sequence[TurnAudio]) -> list[Score]:
        out: list[Score] = []
        for turn in batch:
            text = self.recognizer.transcribe(turn.samples).text if len(turn.samples) else ""
            out.append(
                {
                    "wer": round(wer(turn.text, text), 4),
                    "cer": round(cer(turn.text, text), 4),
                    "asr_text": text,
                }
            )
        return out
