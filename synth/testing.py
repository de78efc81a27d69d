"""Public testing utilities, for synth's own tests and for code built on it:

- `ToneEngine`: an engine that speaks every text as a tone of its voice's pitch, at a steady
  rate of characters, with word times (deterministic, instant, no model): for tests of what
  surrounds synthesis (writer, runner, validate, exports, reports), where the audio's content does
  not matter. Its calls are recorded, and a text or a batch size can be made to fail.
- record builders: `dialog(...)` (a checked Dialog from (speaker, text) pairs) and
  `make_dataset(...)` (a finished dataset folder made by the real pipeline and writer);
- `build_random_vits(...)`: a multi-speaker VITS model folder with random weights
  (config.json, model_file.pth, speaker_ids.json, speaker-info.txt), the layout the coqui engine
  loads, for machines without the model hub: `tiny` is a few MB and fast on a CPU; `vctk` has the
  full-size architecture of coqui's VCTK VITS (speed measurements only)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .domain import Dialog, Source, Voice
from .engines.base import EngineAudio, SynthesisRequest, speaker_distance
from .errors import ConfigError, SynthError
from .words import WordTiming

__all__ = ["ToneEngine", "build_random_vits", "dialog", "make_dataset"]


class ToneEngine:
    """An `Engine` whose voices are tones (voice i at 110 + 30 i Hz), `chars_per_sec` characters a
    second, each word timed by its characters; deterministic. `fail_text`: a request whose text
    contains it raises SynthError (a turn an engine cannot say); `max_batch`: a larger batch
    raises MemoryError (a GPU out of memory). `calls` records the texts of every call."""

    name = "tone"
    model = "tone-test"
    deterministic = True

    def __init__(
        self,
        voices: int = 4,
        sample_rate: int = 16000,
        chars_per_sec: float = 14.0,
        fail_text: str | None = None,
        max_batch: int | None = None,
    ):
        self.sample_rate, self.chars_per_sec = sample_rate, chars_per_sec
        self.fail_text, self.max_batch = fail_text, max_batch
        self.calls: list[list[str]] = []
        self._lock = threading.Lock()
        self._voices = [
            Voice(
                f"tone-{i}",
                self.name,
                self.model,
                str(i),
                params={"hz": 110.0 + 30.0 * i},
                meta={"language": "en"},
            )
            for i in range(voices)
        ]

    def voices(self) -> list[Voice]:
        """The catalog: `voices` tones."""
        return list(self._voices)

    def describe(self) -> dict[str, object]:
        """What metadata records of the engine."""
        return {"engine": self.name, "model": self.model, "chars_per_sec": self.chars_per_sec}

    def voice_distance(self, a: Voice, b: Voice) -> float:
        """Every tone a different person."""
        return speaker_distance(a, b)

    def synthesize(self, requests: Sequence[SynthesisRequest]) -> list[EngineAudio]:
        """One tone per request, its words timed by their characters."""
        with self._lock:
            self.calls.append([r.text for r in requests])
        if self.max_batch is not None and len(requests) > self.max_batch:
            raise MemoryError(f"out of memory: a batch of {len(requests)} (simulated)")
        return [self._speak(r) for r in requests]

    def _speak(self, request: SynthesisRequest) -> EngineAudio:
        if self.fail_text is not None and self.fail_text in request.text:
            raise SynthError(f"cannot say {request.text!r} (simulated)")
        seconds = max(len(request.text), 1) / self.chars_per_sec
        t = np.arange(round(seconds * self.sample_rate), dtype=np.float32) / self.sample_rate
        hz = float(request.voice.params.get("hz", 220.0))
        samples = (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
        words, at = [], 0.0
        for word in request.text.split():
            length = (len(word) + 1) / self.chars_per_sec
            words.append(WordTiming(word, round(at, 4), round(min(at + length, seconds), 4)))
            at += length
        return EngineAudio(samples, float(self.sample_rate), tuple(words) or None)


def dialog(
    turns: Iterable[tuple[str, str]], conversation_id: str = "conv", voices: Mapping[str, str] | None = None
) -> Dialog:
    """A Dialog checked and cleaned as any source's is (synth.dialogs.build.build_dialog)."""
    from .dialogs.build import build_dialog

    return build_dialog(list(turns), conversation_id, Source("testing", index=0), voices)


def make_dataset(
    root: Path | str, dialogs: Iterable[Dialog], engine: Any | None = None, options: Any | None = None
) -> Any:
    """A finished dataset folder made by the real pipeline and writer (`synth.generate`), with
    the ToneEngine unless another engine is given; returns the run's summary."""
    from .api import GenerateOptions, generate

    return generate(list(dialogs), root, options or GenerateOptions(), engine or ToneEngine())


def build_random_vits(
    folder: Path | str,
    speakers: Sequence[str],
    size: str = "tiny",
    speaker_info: Mapping[str, Mapping[str, str]] | None = None,
    seed: int = 0,
    speaker_order: Sequence[str] | None = None,
) -> Path:
    """A VITS model folder with random weights, for the coqui engine. `speaker_order` sets the model's speaker indices (default: `speakers` order), so tests can
    make index order differ from the metadata table's order."""
    import torch
    from TTS.tts.configs.vits_config import VitsConfig
    from TTS.tts.models.vits import Vits

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    order = list(speaker_order or speakers)
    (folder / "speaker_ids.json").write_text(json.dumps({name: i for i, name in enumerate(order)}, indent=1))
    config = VitsConfig()
    config.use_phonemes = False  # characters: no espeak-ng binary needed
    config.text_cleaner = "basic_cleaners"
    args = config.model_args
    args.use_speaker_embedding = True
    args.num_speakers = len(order)
    args.speakers_file = str(folder / "speaker_ids.json")
    args.init_discriminator = False
    if size == "tiny":
        config.audio.fft_size = config.audio.win_length = 256
        config.audio.hop_length = 64
        config.audio.sample_rate = 16000
        args.out_channels = 129
        args.hidden_channels = 32
        args.hidden_channels_ffn_text_encoder = 64
        args.num_heads_text_encoder = 2
        args.num_layers_text_encoder = 2
        args.num_layers_flow = 2
        args.num_layers_posterior_encoder = 2
        args.speaker_embedding_channels = 16
        args.upsample_initial_channel_decoder = 32
        args.upsample_rates_decoder = [4, 4, 4]
        args.upsample_kernel_sizes_decoder = [8, 8, 8]
        args.resblock_kernel_sizes_decoder = [3]
        args.resblock_dilation_sizes_decoder = [[1, 3, 5]]
    elif size != "vctk":
        raise ConfigError("size", "choose tiny or vctk", size)
    torch.manual_seed(seed)
    model = Vits(config)
    config.save_json(str(folder / "config.json"))
    torch.save({"model": model.state_dict()}, folder / "model_file.pth")
    if speaker_info:
        rows = ["ID  AGE  GENDER  ACCENTS  REGION"]
        rows += [
            f"{name}  {m.get('age', '')}  {m.get('gender', '')}  {m.get('accent', '')}  {m.get('region', '')}"
            for name, m in speaker_info.items()
        ]
        (folder / "speaker-info.txt").write_text("\n".join(rows) + "\n")
    return folder
