"""Presets per target model: one name that sets everything a trainer of that kind needs
(`synth generate --for NAME`; in Python `apply_preset(options, NAME)`). Each sets options by
their place in GenerateOptions ("samples.speech_profile"); options given explicitly win.

- `llama-omni`: speech in, text out (LLaMA-Omni and its TTT integrations): LLaMA-Omni's speech
  counting (300 positions a turn) and system prompt, long turns split at sentence boundaries so
  no turn passes Whisper's 30 s window, per-turn 16 kHz mono WAVs and no conversation audio.
- `moshi`: full-duplex models trained with moshi-finetune (and its TTT forks, which cut each
  file into windows and carry state across them): two-channel conversation audio at 24 kHz made
  from the engine's own audio, conversational turn-taking (overlaps, backchannels), and sessions
  of two 300 s windows (10 minutes: past attention's 4-minute cache), so every file fills its
  windows. Export with `synth export --to moshi`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """A named set of options for one kind of trainer."""

    name: str
    summary: str
    settings: Mapping[str, Any]  # "section.field" of GenerateOptions -> value


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "llama-omni",
            "LLaMA-Omni: 300 speech positions a turn, its system prompt, no turn over 30 s, 16 kHz turns",
            {
                "samples.speech_profile": "llama-omni",
                "samples.system_prompt": "llama-omni",
                "samples.format": "chat",
                "pipeline.long_turns": "split",
            },
        ),
        Preset(
            "moshi",
            "moshi-finetune: 24 kHz two-channel conversation audio, overlaps and backchannels, "
            "sessions of 2 x 300 s windows",
            {
                "conversation_audio.sample_rate": 24_000,
                "pipeline.gap": "conversational",
                "pipeline.backchannels": 0.3,
                "sessions.windows": 2,
                "sessions.window_sec": 300.0,
            },
        ),
    )
}


def preset(name: str) -> Preset:
    """The preset of that name; a ConfigError naming --for otherwise."""
    if name not in PRESETS:
        raise ConfigError("for", f"choose one of {', '.join(PRESETS)}", name)
    return PRESETS[name]


def apply_preset(options: Any, name: str) -> Any:
    """`options` (a GenerateOptions) with the preset's settings; a section that is None (no
    conversation audio, no sessions) is made with its defaults first."""
    from .dataset.mixdown import ConversationAudioConfig
    from .dialogs.sessions import SessionConfig
    from .produce.timeline import GapDistribution

    makers = {"conversation_audio": ConversationAudioConfig, "sessions": SessionConfig}
    by_section: dict[str, dict[str, Any]] = {}
    for key, value in preset(name).settings.items():
        section, field = key.split(".", 1)
        by_section.setdefault(section, {})[field] = GapDistribution.parse(value) if field == "gap" else value
    for section, values in by_section.items():
        current = getattr(options, section)
        if section == "sessions" and current is not None:
            continue  # sessions sized explicitly: that sizing wins
        if current is None:
            current = makers[section](**values)
        else:
            current = dataclasses.replace(current, **values)
        options = dataclasses.replace(options, **{section: current})
    return options


@dataclass(frozen=True)
class VoicePreset:
    """Which voices to speak with, and how to cast them (`synth generate --voices NAME`)."""

    name: str
    summary: str
    model: str
    cast_by: str
    min_voice_distance: float

    def apply(
        self, engines: tuple[Any, ...], pipeline: Any, model_cache: str | None = None
    ) -> tuple[Any, Any]:
        """(engine configs, pipeline config) with this preset's voices and casting; the device and
        model cache of the engines given are kept."""
        from .engines.config import KokoroConfig

        device = getattr(engines[0], "device", "auto") if engines else "auto"
        engine = KokoroConfig(model=self.model, device=device, model_cache=model_cache)
        floor = (
            pipeline.min_voice_distance
            if pipeline.min_voice_distance is not None
            else self.min_voice_distance
        )
        return (engine,), dataclasses.replace(pipeline, cast_by=self.cast_by, min_voice_distance=floor)


VOICE_PRESETS: dict[str, VoicePreset] = {
    "natural": VoicePreset(
        "natural",
        "Kokoro-82M's 28 English voices (American and British, female and male; `synth voices fetch "
        "kokoro` puts the model in the cache), cast by measured distance at least 0.45 apart: distinct "
        "natural voices offline, about 1x real time on a CPU (the default embedded voice is ~12x faster)",
        "kokoro-v1.0",
        "measured",
        0.45,
    )
}


def measure_catalog(name: str, config: Any, pipeline: Any) -> Path:
    """Measure the catalog of engine `config` afresh (never from a cache or the shipped files,
    with `pipeline`'s rendering) and write it into the package's shipped measurements
    (synth.voices.shipped) as the catalog of `name`; returns the file."""
    import shutil
    import tempfile

    from .engines import load_engine
    from .produce.render import TurnRenderer
    from .voices.encoder import catalog_key, voice_embeddings
    from .voices.shipped import SHIPPED

    engine = load_engine(config)
    key = catalog_key(engine.describe(), engine.voices())
    print(f"{name}: measuring the {len(engine.voices())} voices of {engine.model} ({key})", flush=True)
    renderer = TurnRenderer(engine, pipeline.max_chunk_chars, pipeline.sample_rate)
    SHIPPED.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        voice_embeddings(
            engine, Path(tmp), renderer.render, shipped=False,
            progress=lambda i, n: print(f"  {i}/{n}", end="\r", flush=True),
        )  # fmt: skip
        shutil.copy2(Path(tmp) / "embeddings" / f"{key}.json", SHIPPED / f"{key}.json")
    print(f"\n{name}: wrote {SHIPPED / f'{key}.json'}")
    return SHIPPED / f"{key}.json"


def measure_voice_presets() -> None:
    """Write the shipped measurements of every voice preset's catalog (synth.voices.shipped)."""
    from .produce.pipeline import PipelineConfig

    for name, preset in VOICE_PRESETS.items():
        (config,), pipeline = preset.apply((), PipelineConfig())
        measure_catalog(name, config, pipeline)


if __name__ == "__main__":
    measure_voice_presets()
