"""espeak-ng through piper-tts's bridge (`piper.espeakbridge`), which both the Piper and the Kokoro
engines phonemize with, without its two leaks (each unbounded in a long run or a server):

- piper-tts 1.8's `get_phonemes` keeps every clause it returns: it appends `Py_BuildValue`'s new
  tuple to its list with `PyList_Append`, which takes a reference of its own, and never drops the
  first (a clause's tuple and phoneme string, about 0.2-0.5 KiB each);
- espeak-ng's `espeak_SetVoiceByName`, which piper-tts calls before every text it phonemizes,
  allocates a copy of the voice (about 1.3 KiB) that only its audio synthesis would free, and
  phonemizing alone never synthesizes.

`leak_free_bridge()` puts a wrapper in place of the bridge that gives back, for each clause whose
reference count shows the extra reference, exactly that one (a bridge that counts right, a fixed
piper-tts, is passed through untouched), and sets the voice only when it changes."""

from __future__ import annotations

import ctypes
import sys
import threading
from typing import Any

_decref = ctypes.pythonapi.Py_DecRef
_decref.argtypes = [ctypes.py_object]
_decref.restype = None


def _held_only_by_a_list() -> int:
    """The reference count `sys.getrefcount(held[i])` reads for a tuple that only its list holds."""
    held = [tuple(["phonemes", ".", True])]
    return sys.getrefcount(held[0])


class LeakFreeBridge:
    """`piper.espeakbridge` with `get_phonemes` giving back the reference the C code forgets, and
    `set_voice` calling espeak-ng only when the voice changes. Its callers hold `espeak_lock()`
    (espeak-ng's voice is one global setting)."""

    def __init__(self, bridge: Any):
        self.bridge = bridge
        self._clean = _held_only_by_a_list()
        self._voice: str | None = None

    def initialize(self, data_dir: str) -> None:
        self.bridge.initialize(data_dir)
        self._voice = None  # a fresh espeak-ng has no voice set

    def set_voice(self, voice: str) -> None:
        if voice != self._voice:
            self.bridge.set_voice(voice)  # an unknown voice raises: nothing is remembered
            self._voice = voice

    def get_phonemes(self, text: str) -> list[tuple[str, str, bool]]:
        clauses = self.bridge.get_phonemes(text)
        for i in range(len(clauses)):
            if sys.getrefcount(clauses[i]) == self._clean + 1:  # the bridge's own, never dropped
                _decref(clauses[i])
        return clauses

    def __getattr__(self, name: str) -> Any:  # anything else the bridge has
        return getattr(self.bridge, name)


_installing = threading.Lock()


def leak_free_bridge() -> LeakFreeBridge:
    """The bridge, wrapped once for the process: piper-tts's own phonemizer imports it by name
    from its package at each call (`from . import espeakbridge`), so the package attribute is
    where the wrapper goes."""
    import piper

    with _installing:
        current = piper.espeakbridge if hasattr(piper, "espeakbridge") else None
        if isinstance(current, LeakFreeBridge):
            return current
        from piper import espeakbridge

        wrapped = LeakFreeBridge(espeakbridge)
        piper.espeakbridge = wrapped  # type: ignore[assignment]  # a module attribute, on purpose
        return wrapped


def espeak_lock() -> Any:
    """piper-tts's own lock around espeak-ng, whose voice is one global setting: Kokoro's
    phonemizer takes the same one, so a Piper voice and a Kokoro voice in one catalog never set
    the voice under each other."""
    from piper.voice import _ESPEAK_PHONEMIZER_LOCK

    return _ESPEAK_PHONEMIZER_LOCK
