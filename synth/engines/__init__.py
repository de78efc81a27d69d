"""Engines by name. Each loads its model once, when constructed; callers keep the instance."""

from __future__ import annotations

from pathlib import Path

from ..errors import SynthError
from .base import Engine, EngineAudio, SynthesisRequest

ENGINES = ("piper",)

__all__ = ["ENGINES", "Engine", "EngineAudio", "SynthesisRequest", "load_engine"]


def load_engine(name: str = "piper", model: str | None = None, device: str = "cpu",
                noise_scale: float | None = None, noise_w_scale: float | None = None) -> Engine:
    """Construct an engine. `model` is a path (Piper: NAME.onnx with NAME.onnx.json); None means
    the embedded default voice."""
    if device not in ("auto", "cpu", "cuda"):
        raise SynthError(f"--device {device!r}: choose auto, cpu or cuda")
    if name == "piper":
        from .piper import PiperEngine

        use_cuda = device == "cuda" or (device == "auto" and _onnx_has_cuda())
        return PiperEngine(Path(model) if model else None, use_cuda=use_cuda,
                           noise_scale=noise_scale, noise_w_scale=noise_w_scale)
    raise SynthError(f"--engine {name!r}: choose one of {', '.join(ENGINES)}")


def _onnx_has_cuda() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
