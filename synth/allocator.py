"""The C allocator, set for long runs. glibc gives every thread that allocates its own arena (up
to 8 per core); ONNX Runtime's intra-op threads and the writer's I/O thread then each keep freed
audio buffers in their own arena, and a process that speaks one long conversation grows by
fragments: measured on the embedded voice, one coherent conversation of 30 minutes peaked at
549 MiB with glibc's default and 494 MiB with two arenas, flat after its first minutes
(docs/benchmarks.md). `synth` limits the arenas to two at start, before any thread exists; a
MALLOC_ARENA_MAX the user set wins, and nothing is done where the C library is not glibc."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Limit glibc's malloc arenas (call before threads start); True when it was set here."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt arenas, macOS no mallopt)
        return False
    return bool(mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(arenas)))
