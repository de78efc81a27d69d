"""The speaker encoder, low in the stack so that scoring (synth.quality.speaker) and measuring
voices (synth.voices.encoder) share it: resemblyzer's (Wan et al.'s GE2E d-vector: a 3-layer
LSTM over 40-band mel frames, 256-dimensional unit embeddings), with the weights its PyPI package
ships (`resemblyzer/pretrained.pt`). The network and its framing are re-stated here from
resemblyzer 0.1.4's source so that loading it does not import resemblyzer's package, whose
voice-activity module needs `pkg_resources` (gone from current setuptools); silence is trimmed by
synth's own audio code instead of WebRTC's detector."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE, trim_silence
from ..engines.onnx_session import configured_threads
from ..errors import SynthError

ENCODER = "resemblyzer-0.1.4-ge2e"
MEL_WINDOW_MS, MEL_STEP_MS, MEL_CHANNELS = 25, 10, 40
PARTIAL_FRAMES = 160  # 1.6 s
NORM_DBFS = -30.0


def weights_path() -> Path:
    """resemblyzer's pretrained.pt, found without importing the package."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise SynthError(
            "the speaker encoder needs resemblyzer's weights: pip install 'synth[voices]' (or 'synth[quality]')"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise SynthError(f"resemblyzer is installed without its weights ({path} is missing)")
    return path


class SpeakerEncoder:
    """Embeds 16 kHz speech into a unit vector; voices that sound alike are close (cosine)."""

    def __init__(self, device: str = "cpu"):
        import torch

        threads = configured_threads()
        if threads is not None and device == "cpu":  # --threads: torch's pool is the process's
            torch.set_num_threads(threads)
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
