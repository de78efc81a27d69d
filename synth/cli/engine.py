"""The engine's flags, shared by every command that synthesizes or lists voices: which engine and
model(s), where it runs, and the VITS noise; one engine config per --model."""

from __future__ import annotations

import argparse

from ..engines import ENGINES, EngineConfig, PiperConfig, engine_configs
from ..engines.config import DEVICES
from .flags import env


def add_engine_args(p: argparse.ArgumentParser) -> None:
    """The engine group: which engine and model(s), the device, the speaker info, blends and the
    model cache."""
    g = p.add_argument_group("engine")
    g.add_argument(
        "--engine",
        default=env("ENGINE", None),
        choices=ENGINES,
        help="TTS engine; default: recognized from each --model (piper without one)",
    )
    g.add_argument(
        "--model",
        action="append",
        default=[m for m in env("MODEL", "").split(",") if m],
        help="repeatable: several models make one catalog. piper: NAME.onnx (with NAME.onnx.json) or a "
        "voice name (en_US-libritts_r-medium, downloaded once into --model-cache); default the embedded "
        "en_US-joe-medium voice; kokoro: kokoro-v1.0 (`synth voices fetch kokoro` puts it in the cache); "
        "coqui: a model name (tts_models/en/vctk/vits) or a folder with config.json, checkpoint and "
        "speaker_ids.json",
    )
    g.add_argument(
        "--device",
        default=env("DEVICE", PiperConfig.device),
        choices=DEVICES,
        help="where the engine runs (auto: CUDA when available)",
    )
    g.add_argument(
        "--half", action="store_true", default=env("HALF", "") == "1", help="coqui: float16 on CUDA"
    )
    g.add_argument(
        "--speaker-info",
        default=env("SPEAKER_INFO", None),
        help="speaker table for voice metadata (gender, accent...), matched by speaker name: VCTK's "
        "speaker-info.txt, a TSV, or LibriTTS/LibriSpeech SPEAKERS.txt (coqui default: "
        "speaker-info.txt beside the model)",
    )
    g.add_argument(
        "--blends",
        default=env("BLENDS", None),
        help="a blends file (synth voices --blend N writes it): add its blended voices (coqui, "
        "multi-speaker piper and kokoro models)",
    )
    g.add_argument(
        "--model-cache",
        default=env("MODEL_CACHE", None),
        help="where models loaded by name are downloaded once and looked up offline (piper voices, "
        "kokoro, coqui models; default $SYNTH_MODEL_CACHE, else ~/.cache/synth/models)",
    )


def add_noise_args(p: argparse.ArgumentParser) -> None:
    """The VITS noise flags; --noise-scale 0 with --noise-w 0 makes the audio deterministic."""
    p.add_argument(
        "--noise-scale",
        type=float,
        default=None,
        help="VITS noise (default: the model's); 0 with --noise-w 0 makes audio deterministic",
    )
    p.add_argument(
        "--noise-w",
        dest="noise_w_scale",
        type=float,
        default=None,
        help="VITS duration noise (default: the model's)",
    )


def engine_from(args: argparse.Namespace) -> tuple[EngineConfig, ...]:
    """One engine config per --model (the engine of each recognized from it)."""
    return engine_configs(
        args.engine,
        args.model,
        device=args.device,
        half=args.half,
        speaker_info=args.speaker_info,
        model_cache=args.model_cache,
        blends=args.blends,
        noise_scale=getattr(args, "noise_scale", None),
        noise_w_scale=getattr(args, "noise_w_scale", None),
    )
