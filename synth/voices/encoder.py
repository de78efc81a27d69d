"""A speaker encoder that runs offline: resemblyzer's (Wan et al.'s GE2E d-vector: a 3-layer LSTM
over 40-band mel frames, 256-dimensional unit embeddings), with the weights its PyPI package ships
(`resemblyzer/pretrained.pt`). The network and its framing are re-stated here from resemblyzer
0.1.4's source so that loading it does not import resemblyzer's package, whose voice-activity
module needs `pkg_resources` (gone from current setuptools); silence is trimmed by synth's own
audio code instead of WebRTC's detector.

Voices are embedded from a few reference sentences each, once per model: the embeddings are kept
as JSON in the model cache (`<cache>/embeddings/`), keyed by the model, the voices' parameters,
the sentences and the encoder, so a catalog is measured once and casting reads the file; the
voice presets' catalogs come measured with the package (synth.voices.shipped)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import SAMPLE_RATE, trim_silence
from ..domain import Voice
from ..errors import SynthError

ENCODER = "resemblyzer-0.1.4-ge2e"
MEL_WINDOW_MS, MEL_STEP_MS, MEL_CHANNELS = 25, 10, 40
PARTIAL_FRAMES = 160  # 1.6 s
NORM_DBFS = -30.0
REFERENCE = (
    "The quick brown fox jumps over the lazy dog near the riverbank.",
    "Could you please tell me how long the museum stays open tonight?",
    "I honestly think we should leave a little earlier tomorrow morning.",
)


def weights_path() -> Path:
    """resemblyzer's pretrained.pt, found without importing the package."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise SynthError("measuring voices needs resemblyzer's weights: pip install 'synth[voices]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise SynthError(f"resemblyzer is installed without its weights ({path} is missing)")
    return path


class SpeakerEncoder:
    """Embeds 16 kHz speech into a unit vector; voices that sound alike are close (cosine)."""

    def __init__(self, device: str = "cpu"):
        import torch

        self.torch = torch
        self.lstm = torch.nn.LSTM(MEL_CHANNELS, 256, 3, batch_first=True)
        self.linear = torch.nn.Linear(256, 256)
        state = torch.load(str(weights_path()), map_location="cpu", weights_only=True)["model_state"]
        self.lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
        self.linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
        self.lstm.to(device).eval()
        self.linear.to(device).eval()
        self.device = device
        import librosa

        n_fft = SAMPLE_RATE * MEL_WINDOW_MS // 1000
        self._filters = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=n_fft, n_mels=MEL_CHANNELS)
        self._window = np.hanning(n_fft + 1)[:-1]  # periodic Hann, as librosa's get_window

    def _mel(self, wav: np.ndarray) -> np.ndarray:
        """librosa.feature.melspectrogram's power mel frames (centered Hann STFT, zero padding,
        Slaney filters), computed with numpy: the same numbers without numba's start-up."""
        n_fft, hop = SAMPLE_RATE * MEL_WINDOW_MS // 1000, SAMPLE_RATE * MEL_STEP_MS // 1000
        padded = np.pad(wav.astype(np.float32), (n_fft // 2, n_fft // 2))
        frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
        power = np.abs(np.fft.rfft(frames * self._window, axis=1)) ** 2
        return (power @ self._filters.T).astype(np.float32)

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """The utterance's embedding: the normalized mean of its partial utterances' (1.6 s
        windows at 1.3 a second, the last kept when it is at least 75% covered)."""
        wav = trim_silence(np.asarray(audio, dtype=np.float32), SAMPLE_RATE, 0.05)
        if not wav.size:
            raise SynthError("cannot embed silence")
        rms = float(np.sqrt(np.mean(wav.astype(np.float64) ** 2)))
        change = NORM_DBFS - 20 * np.log10(max(rms, 1e-10))
        if change > 0:  # increase only, as resemblyzer does
            wav = wav * 10 ** (change / 20)
        step = SAMPLE_RATE * MEL_STEP_MS // 1000
        n_frames = int(np.ceil((wav.shape[0] + 1) / step))
        frame_step = int(np.round((SAMPLE_RATE / 1.3) / step))
        starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + frame_step + 1), frame_step))
        coverage = (wav.shape[0] - starts[-1] * step) / (PARTIAL_FRAMES * step)
        if coverage < 0.75 and len(starts) > 1:
            starts = starts[:-1]
        need = (starts[-1] + PARTIAL_FRAMES) * step
        if need > wav.shape[0]:
            wav = np.pad(wav, (0, need - wav.shape[0]))
        mel = self._mel(wav)
        mels = np.stack([mel[s : s + PARTIAL_FRAMES] for s in starts])
        with self.torch.inference_mode():
            _, (hidden, _) = self.lstm(self.torch.from_numpy(mels).to(self.device))
            raw = self.torch.relu(self.linear(hidden[-1]))
            partial = (raw / self.torch.norm(raw, dim=1, keepdim=True)).cpu().numpy()
        mean = partial.mean(axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cosine similarity of two unit embeddings: 0 the same voice, about 0.1 two takes of
    one voice, 0.3 and more other people."""
    return float(max(0.0, 1.0 - float(np.dot(a, b))))


def catalog_key(describe: dict[str, Any], voices: Sequence[Voice]) -> str:
    """What the embeddings of a catalog depend on (model, voices, sentences, encoder)."""
    stable = {k: v for k, v in describe.items() if k not in ("device", "model_path", "max_batch")}
    blob = json.dumps(
        [ENCODER, REFERENCE, stable, [v.to_dict() for v in voices]], sort_keys=True, default=str
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def voice_embeddings(
    engine: Any,
    cache: Path | None,
    render: Callable[[str, Voice], np.ndarray],
    encoder: SpeakerEncoder | None = None,
    progress: Callable[[int, int], None] | None = None,
    shipped: bool = True,
) -> dict[str, np.ndarray]:
    """Every catalog voice's embedding, from the cache when it has them, else from the package's
    measurements of the presets' catalogs (`shipped`; synth.voices.shipped), else computed (each
    voice speaking the reference sentences, `render` giving 16 kHz audio) and stored."""
    from .shipped import shipped_embeddings

    voices = engine.voices()
    key = catalog_key(engine.describe(), voices)
    path = None
    if cache is not None:
        path = cache / "embeddings" / f"{key}.json"
        if path.is_file():
            data = json.loads(path.read_text())
            return {k: np.asarray(v, dtype=np.float32) for k, v in data["voices"].items()}
    known = shipped_embeddings(key) if shipped else None
    if known is not None:
        return known
    encoder = encoder or SpeakerEncoder()
    out = {}
    for i, voice in enumerate(voices):
        audio = np.concatenate([render(text, voice) for text in REFERENCE])
        out[voice.id] = encoder.embed(audio)
        if progress is not None:
            progress(i + 1, len(voices))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        record = {
            "encoder": ENCODER,
            "model": engine.model,
            "sentences": list(REFERENCE),
            "voices": {k: [round(float(x), 6) for x in v] for k, v in out.items()},
        }
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)
    return out


class MeasuredDistance:
    """Voice distance from measured embeddings (falls back to `fallback` for a voice not
    measured)."""

    def __init__(self, embeddings: dict[str, np.ndarray], fallback: Callable[[Voice, Voice], float]):
        self.embeddings, self.fallback = embeddings, fallback

    def __call__(self, a: Voice, b: Voice) -> float:
        ea, eb = self.embeddings.get(a.id), self.embeddings.get(b.id)
        if ea is None or eb is None:
            return self.fallback(a, b)
        return cosine_distance(ea, eb)
