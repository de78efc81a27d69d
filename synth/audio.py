"""Audio post-processing, pure functions on float32 arrays: resampling to the dataset rate,
bounded silence, consistent loudness, PCM16 conversion; and the measures the checks use (a
file read at another rate as a stream, silence at the edges, residual energy).

Loudness is measured on active frames only (a pause-heavy turn is not boosted), then a peak
ceiling keeps every sample below full scale, so PCM16 conversion never clips."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import DialogError

SAMPLE_RATE = 16_000
TARGET_DBFS = -20.0
PEAK_DBFS = -1.0
FRAME_SEC = 0.01
SILENCE_DB = -40.0  # below the loudest frame: counts as silence
FLOOR_DBFS = -70.0  # and anything this quiet, whatever the loudest frame
EDGE_SILENCE_SEC = 0.1  # silence kept at each end of a turn
PAUSE_SEC = 0.25  # between sentences of one turn


def resample(samples: np.ndarray, rate: float, target: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling with soxr (high quality). `rate` may be fractional."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:  # (frames, channels) -> mono
        samples = samples.mean(axis=1)
    if abs(rate - target) < 1e-6 or samples.size == 0:
        return samples.copy()
    return soxr.resample(samples, float(rate), target, quality="HQ").astype(np.float32, copy=False)


def _frame_db(samples: np.ndarray, rate: int) -> np.ndarray:
    n = max(1, int(rate * FRAME_SEC))
    usable = samples[: len(samples) // n * n].reshape(-1, n) if len(samples) >= n else samples[None, :]
    rms = np.sqrt(np.mean(np.square(usable, dtype=np.float64), axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-10))


def _active(db: np.ndarray) -> np.ndarray:
    return db > max(float(db.max()) + SILENCE_DB, FLOOR_DBFS)


def silence_bounds(samples: np.ndarray, rate: int, keep_sec: float = EDGE_SILENCE_SEC) -> tuple[int, int]:
    """[start, end) of `samples` with leading and trailing silence cut down to at most
    `keep_sec` on each side ((0, 0) when it is all silence)."""
    if samples.size == 0:
        return 0, 0
    db = _frame_db(samples, rate)
    active = np.flatnonzero(_active(db))
    if active.size == 0:
        return 0, 0
    n = max(1, int(rate * FRAME_SEC))
    keep = int(rate * keep_sec)
    return int(max(0, active[0] * n - keep)), int(min(len(samples), (active[-1] + 1) * n + keep))


def trim_silence(samples: np.ndarray, rate: int, keep_sec: float = EDGE_SILENCE_SEC) -> np.ndarray:
    """Cut leading and trailing silence down to at most `keep_sec` on each side."""
    start, end = silence_bounds(samples, rate, keep_sec)
    return samples[start:end]


def active_dbfs(samples: np.ndarray, rate: int) -> float:
    """Loudness of the speech (frames within 40 dB of the loudest), in dBFS RMS."""
    if samples.size == 0:
        return -np.inf
    n = max(1, int(rate * FRAME_SEC))
    db = _frame_db(samples, rate)
    keep = _active(db)
    if not keep.any():
        return -np.inf
    frames = samples[: len(db) * n].reshape(len(db), -1)[keep] if len(samples) >= n else samples[None, :]
    rms = float(np.sqrt(np.mean(np.square(frames, dtype=np.float64))))
    return 20 * np.log10(max(rms, 1e-10))


def loudness_gain(
    samples: np.ndarray, rate: int, target_dbfs: float = TARGET_DBFS, peak_dbfs: float = PEAK_DBFS
) -> float:
    """The gain that brings `samples` to `target_dbfs` active loudness, lowered if needed to keep
    peaks under `peak_dbfs` (1.0 for silence)."""
    level = active_dbfs(samples, rate)
    if not np.isfinite(level) or level < -90:
        return 1.0
    gain = 10 ** ((target_dbfs - level) / 20)
    return capped(samples, gain, peak_dbfs)


def capped(samples: np.ndarray, gain: float, peak_dbfs: float = PEAK_DBFS) -> float:
    """`gain`, lowered if needed so that no sample of `samples` goes over `peak_dbfs`."""
    peak = float(np.max(np.abs(samples))) * gain if samples.size else 0.0
    ceiling = 10 ** (peak_dbfs / 20)
    if peak > ceiling:
        gain *= ceiling / peak
    return gain


def normalize_loudness(
    samples: np.ndarray, rate: int, target_dbfs: float = TARGET_DBFS, peak_dbfs: float = PEAK_DBFS
) -> np.ndarray:
    """Scale to `target_dbfs` active loudness, lowered if needed to keep peaks under `peak_dbfs`."""
    gain = loudness_gain(samples, rate, target_dbfs, peak_dbfs)
    if gain == 1.0:
        return samples.astype(np.float32, copy=True)
    return (samples * gain).astype(np.float32)


def join(chunks: list[np.ndarray], rate: int, pause_sec: float = PAUSE_SEC) -> np.ndarray:
    """Concatenate sentence chunks with a short pause between them."""
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    pause = np.zeros(int(rate * pause_sec), dtype=np.float32)
    parts: list[np.ndarray] = []
    for i, chunk in enumerate(chunks):
        if i:
            parts.append(pause)
        parts.append(chunk.astype(np.float32, copy=False))
    return np.concatenate(parts)


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    """16-bit PCM samples of float audio, clipped just below full scale so that a sample at 1.0
    does not wrap around to -32768."""
    return np.round(np.clip(samples, -1.0, 32767 / 32768) * 32768).astype(np.int16)


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """A complete 16-bit PCM mono WAV file in memory (for streaming over the wire)."""
    buf = io.BytesIO()
    sf.write(buf, to_pcm16(samples), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def write_wav(path: Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write `samples` to `path` as a 16-bit PCM mono WAV file (what `wav_bytes` makes in memory)."""
    sf.write(str(path), to_pcm16(samples), rate, format="WAV", subtype="PCM_16")


def load_audio(path: Path, where: str) -> np.ndarray:
    """16 kHz mono float32, or a DialogError naming the file."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile: missing, truncated or not audio
        raise DialogError(f"unreadable audio file {path} ({exc})", where) from None
    if data.shape[0] == 0:
        raise DialogError(f"audio file {path} has no samples", where)
    return resample(data.mean(axis=1), rate, SAMPLE_RATE)


def edge_silence(samples: np.ndarray, rate: int) -> tuple[float, float] | None:
    """Seconds of silence before and after the speech of `samples` (None when it is all silence)."""
    lo, hi = silence_bounds(samples, rate, 0.0)
    if hi <= lo:
        return None
    return lo / rate, (samples.shape[0] - hi) / rate


def residual(got: np.ndarray, expected: np.ndarray) -> float | None:
    """The energy of `got - expected` as a share of `expected`'s (None where `expected` is silent):
    how far a signal is from the one it should be, whatever small resampling error it carries."""
    energy = float(np.sum(expected**2))
    if energy == 0:
        return None
    return float(np.sum((got - expected) ** 2)) / energy


class ResampledReader:
    """A sound file read at `target` Hz, any number of frames at a time: resampled as a stream
    (soxr), so that a long file is never whole in memory; silence past its end."""

    def __init__(self, path: Path, target: int = SAMPLE_RATE) -> None:
        self._file = sf.SoundFile(str(path))
        rate, channels = self._file.samplerate, self._file.channels
        self._stream = soxr.ResampleStream(rate, target, channels, dtype="float32")
        self._pending = np.zeros((0, channels), dtype=np.float32)
        self._ended = False  # the stream flushed: soxr takes no input after its last

    def read(self, frames: int) -> np.ndarray:
        """The next `frames` frames, float32 (frames, channels)."""
        while self._pending.shape[0] < frames and not self._ended:
            raw = self._file.read(self._file.samplerate, dtype="float32", always_2d=True)
            self._ended = not raw.shape[0]
            chunk = self._stream.resample_chunk(raw, last=self._ended)
            self._pending = np.concatenate([self._pending, chunk])
        got, self._pending = self._pending[:frames], self._pending[frames:]
        if got.shape[0] < frames:
            got = np.pad(got, ((0, frames - got.shape[0]), (0, 0)))
        return got

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ResampledReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
