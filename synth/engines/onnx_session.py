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
one; a cache that cannot be written only costs the time saved.

Every session takes its intra-op thread count from `session_options()`: ONNX Runtime's own choice
(one thread per physical core) unless `SYNTH_ONNX_THREADS` or `intra_op_threads` says otherwise,
so that N worker processes on one machine (`synth generate --workers N --threads T`,
synth.workflows.workers) share its cores instead of each spinning a thread on every core."""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError

OPTIMIZED_DIR = "optimized"
CPU = ["CPUExecutionProvider"]
THREADS_VARIABLE = "SYNTH_ONNX_THREADS"  # intra-op threads of every session this process makes
_threads: list[int | None] = []  # set by `intra_op_threads`, innermost last


def configured_threads() -> int | None:
    """The intra-op thread count sessions are made with now: `intra_op_threads`'s, else
    SYNTH_ONNX_THREADS's, else None (ONNX Runtime's own: one per physical core)."""
    if _threads and _threads[-1] is not None:
        return _threads[-1]
    raw = os.environ.get(THREADS_VARIABLE, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(
            "threads", f"{THREADS_VARIABLE}={raw!r} is not a whole number of threads (1 or more)"
        )
    return int(raw)


@contextlib.contextmanager
def intra_op_threads(threads: int | None) -> Iterator[None]:
    """Sessions made inside the block (they are made on first use) run `threads` intra-op
    threads; None leaves the choice to SYNTH_ONNX_THREADS or ONNX Runtime."""
    _threads.append(threads)
    try:
        yield
    finally:
        _threads.pop()


def session_options() -> Any:
    """onnxruntime.SessionOptions with the configured intra-op thread count."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    threads = configured_threads()
    if threads is not None:
        options.intra_op_num_threads = threads
    return options


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
        return ort.InferenceSession(_graph(model, patch), sess_options=session_options(), providers=providers)
    stat = model.stat()
    key = hashlib.sha256(
        f"{model.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{ort.__version__}:{tag}:{providers}".encode()
    ).hexdigest()[:24]
    target = cache / OPTIMIZED_DIR / f"{model.stem}.{key}.onnx"
    if target.is_file():
        try:
            return ort.InferenceSession(str(target), sess_options=session_options(), providers=providers)
        except Exception:  # a damaged cache file: made again below
            with contextlib.suppress(OSError):
                target.unlink()
    options = session_options()
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
