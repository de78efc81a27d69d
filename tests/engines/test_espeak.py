"""The espeak-ng bridge of piper-tts, made leak-free: every clause it returns is freed once nothing
holds it (the installed bridge keeps each one forever), the voice is set only when it changes
(espeak-ng keeps a copy of the voice at each setting), the phonemes are the bridge's own, piper's
own phonemizer goes through the wrapper, and a bridge that counts its references right is left
as it is. Native memory is glibc's count of bytes in use (mallinfo2)."""

from __future__ import annotations

import ctypes
import gc
import sys
import tracemalloc

from synth.engines.espeak import LeakFreeBridge, _held_only_by_a_list, leak_free_bridge


def _ready() -> LeakFreeBridge:
    from piper.phonemize_espeak import EspeakPhonemizer

    bridge = leak_free_bridge()
    EspeakPhonemizer()  # espeak-ng initialized with piper's data
    bridge.set_voice("en-us")
    return bridge


def _unique_texts(n: int, tag: str) -> list[str]:
    return [f"Is parcel {tag} {i} at the door yet? Not yet, it comes on {tag} day {i}." for i in range(n)]


def _kept_kib(call, texts: list[str]) -> float:
    """KiB still allocated (Python's allocator, traced) after calling `call` on every text and
    dropping the results."""
    gc.collect()
    tracemalloc.start()
    try:
        for text in texts:
            call(text)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] / 1024
    finally:
        tracemalloc.stop()


def test_the_pinned_bridge_leaks_each_clause():
    """Why the wrapper exists: piper-tts 1.8.0 (pinned) keeps every clause it returned."""
    bridge = _ready()
    kept = _kept_kib(bridge.bridge.get_phonemes, _unique_texts(1500, "raw"))
    assert kept > 500, f"{kept:.0f} KiB kept: has piper-tts fixed its bridge? then the wrapper can go"


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                     "fordblks", "keepcost")
    ]  # fmt: skip


def _native_in_use_kib() -> float:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _Mallinfo2
    return libc.mallinfo2().uordblks / 1024


def test_the_voice_is_set_only_when_it_changes():
    bridge = _ready()
    texts = _unique_texts(40, "v")
    before = _native_in_use_kib()
    for _ in range(100):
        bridge.bridge.set_voice("en-us")  # what piper-tts does before each text
    raw = _native_in_use_kib() - before
    assert raw > 50, f"{raw:.0f} KiB for 100 settings: has espeak-ng stopped keeping a voice copy?"
    before = _native_in_use_kib()
    for _ in range(25):
        for text in texts:
            bridge.set_voice("en-us")
            bridge.get_phonemes(text)
    wrapped = _native_in_use_kib() - before
    assert wrapped < 20, f"{wrapped:.0f} KiB kept by 1000 texts through the wrapper"
    # British and American English alternate (a Kokoro voice of each): each switch really switches
    tomato = "I say tomato."
    bridge.set_voice("en")
    british = bridge.get_phonemes(tomato)
    bridge.set_voice("en-us")
    american = bridge.get_phonemes(tomato)
    assert british != american
    bridge.set_voice("en")
    assert bridge.get_phonemes(tomato) == british
    bridge.set_voice("en-us")


def test_phonemes_are_the_same_with_the_voice_set_once_or_every_time():
    """espeak-ng switches language inside a text for borrowed words; the voice it comes back to
    is the one set, so setting it once gives what setting it before each text gives."""
    bridge = _ready()
    texts = [
        "We had a croissant at the café, then a schnitzel.",
        "Déjà vu, she said, and ordered the paella and a espresso.",
        "The kindergarten opens at 8:30 on the 2nd of May, 2027.",
        "Is it Dr. Smith or Mr. Lee who owns the Volkswagen?",
        *_unique_texts(20, "same"),
    ]
    once = []
    bridge.set_voice("en-us")
    for text in texts:
        bridge.set_voice("en-us")  # the wrapper: a no-op after the first
        once.append(bridge.get_phonemes(text))
    every = []
    for text in texts:
        bridge.bridge.set_voice("en-us")
        every.append(bridge.bridge.get_phonemes(text))
    assert once == every


def test_clauses_are_freed_and_the_phonemes_are_the_bridges_own():
    bridge = _ready()
    texts = _unique_texts(1500, "a")
    for text in texts[:50]:
        assert bridge.get_phonemes(text) == bridge.bridge.get_phonemes(text)
    first = bridge.get_phonemes(texts[0])
    assert [p[1:] for p in first] == [("?", True), (",", False), (".", True)]
    assert all(sys.getrefcount(first[i]) == _held_only_by_a_list() for i in range(3))  # the list's only
    kept = _kept_kib(bridge.get_phonemes, texts)
    assert kept < 20, f"{kept:.0f} KiB kept after 1500 texts through the wrapper"


def test_piper_phonemizes_through_the_wrapper():
    import piper
    from piper.phonemize_espeak import EspeakPhonemizer

    _ready()
    assert isinstance(piper.espeakbridge, LeakFreeBridge)
    assert leak_free_bridge() is piper.espeakbridge  # wrapped once, not twice
    phonemizer = EspeakPhonemizer()
    kept = _kept_kib(lambda text: phonemizer.phonemize("en-us", text), _unique_texts(1500, "b"))
    assert kept < 20, f"{kept:.0f} KiB kept after 1500 texts through piper's phonemizer"


class _CountingRight:
    """A bridge without the leak (what a fixed piper-tts would be): fresh tuples, one reference
    each, held by the returned list only."""

    def get_phonemes(self, text: str) -> list[tuple[str, str, bool]]:
        return [tuple([word, "", False]) for word in text.split()]  # type: ignore[misc]


def test_a_bridge_that_counts_right_is_left_untouched():
    wrapped = LeakFreeBridge(_CountingRight())
    held = [wrapped.get_phonemes(f"one two three {i}") for i in range(2000)]
    gc.collect()
    assert held[1234] == [("one", "", False), ("two", "", False), ("three", "", False), ("1234", "", False)]
    assert all(sys.getrefcount(clauses[0]) == _held_only_by_a_list() for clauses in held[:100])
