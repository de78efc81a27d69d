"""Engines by name. Each loads its model once, when constructed; callers keep the instance."""

from __future__ import annotations

from pathlib import Path

from ..errors import SynthError
from .base import Engine, EngineAudio, SynthesisRequest

ENGINES = ("piper", "coqui")

__all__ = ["ENGINES", "Engine", "EngineAudio", "SynthesisRequest", "load_engine"]


def load_engine(name: str = "piper", model: str | None = None, device: str = "cpu",
                noise_scale: float | None = None, noise_w_scale: float | None = None,
                half: bool = False, speaker_info: str | None = None, model_cache: str | None = None,
                ) -> Engine:
    """Construct an engine. Piper: `model` is NAME.onnx (with NAME.onnx.json), None for the
    embedded default voice. Coqui: a model name (`tts_models/en/vctk/vits`) or a model folder;
    `half` runs it in float16 on CUDA; `speaker_info` is a VCTK-style speaker table."""
    if device not in ("auto", "cpu", "cuda"):
        raise SynthError(f"--device {device!r}: choose auto, cpu or cuda")
    if name == "coqui":
        from .coqui import CoquiEngine

        if not model:
            raise SynthError("--engine coqui needs --model (a name like tts_models/en/vctk/vits, "
                             "or a model folder)")
        return CoquiEngine(model, device=device, half=half, noise_scale=noise_scale,
                           noise_w_scale=noise_w_scale,
                           speaker_info=Path(speaker_info) if speaker_info else None,
                           model_cache=Path(model_cache) if model_cache else None)
    if name == "piper":
        from .piper import PiperEngine

        use_cuda = device == "cuda" or (device == "auto" and _onnx_has_cuda())
        return PiperEngine(Path(model) if model else None, use_cuda=use_cuda,
                           noise_scale=noise_scale, noise_w_scale=noise_w_scale)
    raise SynthError(f"--engine {name!r}: choose one of {', '.join(ENGINES)}")


def _onnx_has_cuda() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
