"""Acoustic augmentation of the user's side of the conversation audio, as Moshi's synthetic
dialogues have it: a microphone gain, background noise at a signal-to-noise ratio (generated
white or pink noise, or recordings from a folder the user gives) and reverberation by a synthetic
room impulse response (exponentially decaying noise with a drawn RT60, a direct path first).

Everything is drawn per conversation from (seed, conversation id) and recorded in metadata, so a
dataset is reproducible; the clean per-turn WAVs stay the reference. The processing is streamed
block by block (the reverb tail carries over), so it needs no more memory than the mix."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import SAMPLE_RATE, active_dbfs, load_audio
from ..errors import ConfigError
from ..options import option

NOISE_KINDS = ("white", "pink")
NOISE_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
DIRECT_TO_REVERB_DB = 3.0  # a talker a metre or so from the microphone


def parse_range(text: str) -> tuple[float, float] | None:
    """'LO,HI' -> (LO, HI); 'none' -> None."""
    if text == "none":
        return None
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError("range", "expected LO,HI (or none)", text) from None
    return lo, hi


def range_text(r: tuple[float, float] | None) -> str:
    """A (low, high) range as the help shows it as a default ("a,b", or "none")."""
    return "none" if r is None else f"{r[0]:g},{r[1]:g}"


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges the per-conversation values are drawn from (uniformly).

    gain_db: microphone gain of the user's side.
    snr_db: speech-to-noise ratio (None: no noise).
    noise: 'white', 'pink' or a folder of noise recordings (drawn per conversation, looped).
    reverb: the chance a conversation is reverberant; rt60_sec: its reverberation time."""

    gain_db: tuple[float, float] = option(
        (-6.0, 3.0),
        flag="--augment-gain",
        metavar="LO,HI",
        parse=parse_range,
        text=range_text,
        help="gain range, dB",
    )
    snr_db: tuple[float, float] | None = option(
        (10.0, 30.0),
        flag="--augment-snr",
        metavar="LO,HI",
        parse=parse_range,
        text=range_text,
        help="signal-to-noise range, dB ('none': no noise)",
    )
    noise: str = option("pink", flag="--augment-noise", help="white, pink or a folder of noise recordings")
    reverb: float = option(0.5, flag="--augment-reverb", metavar="P", help="chance of reverberation")
    rt60_sec: tuple[float, float] = option(
        (0.2, 0.8),
        flag="--augment-rt60",
        metavar="LO,HI",
        parse=parse_range,
        text=range_text,
        help="reverberation time range, s",
    )

    def __post_init__(self) -> None:
        for name in ("gain_db", "snr_db", "rt60_sec"):
            r = getattr(self, name)
            if r is not None and (len(r) != 2 or r[0] > r[1]):
                raise ConfigError(name, "expected an ordered range LO,HI", r)
        if not 0.0 <= self.reverb <= 1.0:
            raise ConfigError("reverb", "must be a probability between 0 and 1", self.reverb)
        if self.rt60_sec[0] <= 0:
            raise ConfigError("rt60_sec", "must be positive", self.rt60_sec)
        if self.noise not in NOISE_KINDS and not Path(self.noise).is_dir():
            raise ConfigError(
                "noise", f"expected {' or '.join(NOISE_KINDS)} or a folder of recordings", self.noise
            )
        if self.snr_db is not None and self.noise not in NOISE_KINDS:
            self.noise_files()  # an empty folder is refused before the run, not at each conversation

    def noise_files(self) -> list[Path]:
        if self.noise in NOISE_KINDS:
            return []
        files = sorted(p for p in Path(self.noise).rglob("*") if p.suffix.lower() in NOISE_SUFFIXES)
        if not files:
            raise ConfigError("noise", "the folder has no audio files", self.noise)
        return files

    def draw(self, rng: random.Random) -> dict[str, Any]:
        """One conversation's augmentation, as recorded in its metadata."""
        recipe: dict[str, Any] = {"gain_db": round(rng.uniform(*self.gain_db), 2)}
        if self.snr_db is not None:
            recipe["snr_db"] = round(rng.uniform(*self.snr_db), 2)
            files = self.noise_files()
            recipe["noise"] = self.noise if not files else str(rng.choice(files))
        recipe["rt60_sec"] = round(rng.uniform(*self.rt60_sec), 3) if rng.random() < self.reverb else None
        recipe["seed"] = rng.getrandbits(32)
        return recipe


def room_impulse_response(rt60_sec: float, rng: np.random.Generator, rate: int = SAMPLE_RATE) -> np.ndarray:
    """A synthetic room: a direct path, then Gaussian noise decaying by 60 dB over `rt60_sec`
    (Schroeder's statistical model of late reverberation) DIRECT_TO_REVERB_DB under it, scaled
    to unit energy."""
    n = max(1, int(rt60_sec * rate))
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60_sec)  # ln(1000) = 6.9078: -60 dB
    tail[: int(0.002 * rate)] = 0.0  # first reflections arrive a little after the direct sound
    rir = tail * np.sqrt(10 ** (-DIRECT_TO_REVERB_DB / 10) / max(float(np.sum(tail**2)), 1e-12))
    rir[0] = 1.0
    return (rir / np.sqrt(np.sum(rir**2))).astype(np.float32)


class ChannelAugmenter:
    """Processes one channel's blocks in order: reverb (overlap-add, tail carried), noise, gain."""

    def __init__(self, recipe: dict[str, Any], speech_dbfs: float, rate: int = SAMPLE_RATE):
        self.recipe, self.rate = recipe, rate
        self.rng = np.random.default_rng(int(recipe["seed"]))
        rt60 = recipe.get("rt60_sec")
        self.rir = room_impulse_response(rt60, self.rng, rate) if rt60 else None
        self.tail = np.zeros(0, dtype=np.float64)
        self.gain = 10 ** (float(recipe["gain_db"]) / 20)
        self.noise_rms = None
        if "snr_db" in recipe and math.isfinite(speech_dbfs):
            self.noise_rms = 10 ** ((speech_dbfs - float(recipe["snr_db"])) / 20)
        self._noise_file: np.ndarray | None = None
        self._noise_pos = 0

    @property
    def tail_sec(self) -> float:
        return 0.0 if self.rir is None else self.rir.shape[0] / self.rate

    def __call__(self, block: np.ndarray, first: int) -> np.ndarray:
        x = block.astype(np.float64)
        if self.rir is not None:
            x = self._reverb(x)
        if self.noise_rms is not None:
            x = x + self._noise(x.shape[0]) * self.noise_rms
        return (x * self.gain).astype(np.float32)

    def _reverb(self, x: np.ndarray) -> np.ndarray:
        assert self.rir is not None
        n = x.shape[0] + self.rir.shape[0] - 1
        size = 1 << (n - 1).bit_length()
        y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(self.rir, size), size)[:n]
        y[: self.tail.shape[0]] += self.tail
        out, self.tail = y[: x.shape[0]], y[x.shape[0] :].copy()
        return out

    def _noise(self, n: int) -> np.ndarray:
        kind = self.recipe["noise"]
        if kind == "white":
            noise = self.rng.standard_normal(n)
        elif kind == "pink":
            noise = _pink(self.rng.standard_normal(n))
        else:
            noise = self._from_file(n)
        rms = float(np.sqrt(np.mean(noise**2))) or 1.0
        return noise / rms

    def _from_file(self, n: int) -> np.ndarray:
        if self._noise_file is None:
            data = load_audio(Path(self.recipe["noise"]), "noise")
            self._noise_file = data.astype(np.float64) if np.any(data) else np.ones(1)
            self._noise_pos = int(self.rng.integers(0, self._noise_file.shape[0]))
        src = self._noise_file
        idx = (self._noise_pos + np.arange(n)) % src.shape[0]
        self._noise_pos = int((self._noise_pos + n) % src.shape[0])
        return src[idx]


def _pink(white: np.ndarray) -> np.ndarray:
    """1/f noise: white noise with its spectrum scaled by 1/sqrt(f)."""
    spectrum = np.fft.rfft(white)
    f = np.arange(spectrum.shape[0], dtype=np.float64)
    f[0] = 1.0
    return np.fft.irfft(spectrum / np.sqrt(f), white.shape[0])


def speech_level(paths: list[Path]) -> float:
    """The active loudness (dBFS) of a channel's speech, over all its files."""
    import soundfile as sf

    levels = []
    for p in paths:
        data, rate = sf.read(str(p), dtype="float32")
        level = active_dbfs(data, rate)
        if math.isfinite(level):
            levels.append(10 ** (level / 10))
    return 10 * math.log10(np.mean(levels)) if levels else -math.inf
