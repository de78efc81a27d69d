"""ONNX Runtime sessions that start fast: built when first used, from an optimized graph kept in
the model cache.

Loading a voice used to cost about 1.5 s at every start (importing `onnx` to add the alignment
output to the graph, then ONNX Runtime's graph optimizations), which `synth voices` paid without
speaking a word and every short Slurm task paid again. Now the session is made on first use
(`LazySession`), and the first start on a machine writes the patched, optimized graph beside the
model cache (`cached_session`); later starts load it in about 0.2 s (docs/benchmarks.md). The
saved graph holds only the portable optimizations (ORT_ENABLE_EXTENDED); the hardware-specific
ones are applied at each load. It is keyed by the model file (path, size, modification time),
the patch, ONNX Runtime's version and the providers, so a changed model or runtime makes a new
one; a cache that cannot be written only costs the time saved."""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

OPTIMIZED_DIR = "optimized"
CPU = ["CPUExecutionProvider"]


class LazySession:
    """An InferenceSession made by `factory` on first use; reads as the session itself."""

    def __init__(self, factory: Callable[[], Any]):
        self._factory = factory
        self._session: Any = None

    @property
    def session(self) -> Any:
        if self._session is None:
            self._session = self._factory()
        return self._session

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


def cached_session(
    model: Path,
    providers: list[Any],
    cache: Path | None,
    patch: Callable[[Any], None] | None = None,
    tag: str = "",
) -> Any:
    """A session of `model` (an .onnx file) whose graph, once `patch`ed (an onnx ModelProto edited
    in place, e.g. an extra output) and optimized, is kept in `cache` for the next start. Only CPU
    sessions are cached (a CUDA graph is optimized for its device)."""
    import onnxruntime as ort

    if cache is None or providers != CPU:
        return ort.InferenceSession(
            _graph(model, patch), sess_options=ort.SessionOptions(), providers=providers
        )
    stat = model.stat()
    key = hashlib.sha256(
        f"{model.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{ort.__version__}:{tag}:{providers}".encode()
    ).hexdigest()[:24]
    target = cache / OPTIMIZED_DIR / f"{model.stem}.{key}.onnx"
    if target.is_file():
        try:
            return ort.InferenceSession(str(target), sess_options=ort.SessionOptions(), providers=providers)
        except Exception:  # a damaged cache file: made again below
            with contextlib.suppress(OSError):
                target.unlink()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        options.optimized_model_filepath = str(tmp)
    except OSError:
        tmp = None  # type: ignore[assignment]  # a read-only cache: no file, the session all the same
    session = ort.InferenceSession(_graph(model, patch), sess_options=options, providers=providers)
    if tmp is not None:
        with contextlib.suppress(OSError):
            os.replace(tmp, target)  # whole or not at all, for a concurrent start
        with contextlib.suppress(OSError):
            tmp.unlink()
    return session


def _graph(model: Path, patch: Callable[[Any], None] | None) -> str | bytes:
    """The model's path, or its patched graph's bytes."""
    if patch is None:
        return str(model)
    import onnx

    proto = onnx.load(str(model))
    patch(proto)
    return proto.SerializeToString()
