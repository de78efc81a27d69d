"""Engines by configuration. Each loads its model once, when constructed; callers keep the
instance. To add an engine: a module with a class that satisfies `Engine` (synth.engines.base),
a config dataclass in synth.engines.config, and one entry in `load_engine`."""

from __future__ import annotations

from .base import Engine, EngineAudio, SynthesisRequest
from .config import ENGINES, CoquiConfig, EngineConfig, PiperConfig, engine_config

__all__ = [
    "ENGINES",
    "CoquiConfig",
    "Engine",
    "EngineAudio",
    "EngineConfig",
    "PiperConfig",
    "SynthesisRequest",
    "engine_config",
    "load_engine",
]


def load_engine(config: EngineConfig | None = None) -> Engine:
    """Construct the engine a config describes (default: the embedded Piper voice)."""
    config = config or PiperConfig()
    if isinstance(config, CoquiConfig):
        from .coqui import CoquiEngine

        return CoquiEngine(config)
    from .piper import PiperEngine

    return PiperEngine(config)
