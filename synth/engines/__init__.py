"""Engines by configuration. Each loads its model once, when constructed; callers keep the
instance. To add an engine: a module with a class that satisfies `Engine` (synth.engines.base),
a config dataclass in synth.engines.config, and one entry in `load_engine`."""

from __future__ import annotations

from collections.abc import Sequence

from .base import Engine, EngineAudio, SynthesisRequest
from .config import (
    ENGINES,
    CoquiConfig,
    EngineConfig,
    KokoroConfig,
    PiperConfig,
    engine_config,
    engine_configs,
    engine_of,
)

__all__ = [
    "ENGINES",
    "CoquiConfig",
    "Engine",
    "EngineAudio",
    "EngineConfig",
    "KokoroConfig",
    "PiperConfig",
    "SynthesisRequest",
    "engine_config",
    "engine_configs",
    "engine_of",
    "load_engine",
]


def load_engine(config: EngineConfig | Sequence[EngineConfig] | None = None) -> Engine:
    """Construct the engine a config describes (default: the embedded Piper voice); several
    configs make one catalog of all their voices (synth.engines.multi)."""
    if isinstance(config, (list, tuple)):
        if len(config) == 1:
            return load_engine(config[0])
        from .multi import MultiEngine

        return MultiEngine([load_engine(c) for c in config])
    config = config or PiperConfig()
    if isinstance(config, CoquiConfig):
        from .coqui import CoquiEngine

        return CoquiEngine.load(config)
    if isinstance(config, KokoroConfig):
        from .kokoro import KokoroEngine

        return KokoroEngine(config)
    from .piper import PiperEngine

    assert isinstance(config, PiperConfig)
    return PiperEngine(config)
