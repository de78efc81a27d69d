"""Forced alignment (recorded speech) against the engine's own word timings on the same audio,
and both against where speech physically starts after a pause (docs/full-duplex.md has the
benchmark, bench/bench_word_timings.py)."""

import statistics

import numpy as np
import pytest

from synth.asr.alignment import ForcedAligner, silent_spans, snap_to_speech
from synth.dialogs.build import build_dialog
from synth.domain import Source
from synth.produce.pipeline import Pipeline
from synth.words import WordTiming

SENTENCES = [
    "The ferry was cancelled, so we spent the night in a tiny hotel by the port.",
    "Please bring two folding chairs and a blanket to the concert on Saturday.",
    "I finally found my keys in the pocket of the coat I wore last winter.",
    "Do you think the bakery on the corner is open this early? I am starving.",
]


@pytest.fixture(scope="module")
def aligner():
    from synth.asr.recognizer import Recognizer

    return ForcedAligner(Recognizer())


@pytest.fixture(scope="module")
def spoken(quiet_engine):
    dialog = build_dialog([("A", s) for s in SENTENCES], "fa", Source("t"))
    return Pipeline(quiet_engine).run(dialog).turns


def test_every_word_of_the_transcript_is_aligned_in_order(aligner, spoken):
    for turn in spoken:
        words = aligner.align(turn.audio, turn.text)
        assert [w.word for w in words] == turn.text.split()
        assert all(0 <= w.start <= w.end <= turn.duration_sec for w in words)
        assert all(a.end <= b.start + 1e-9 for a, b in zip(words, words[1:]))


def test_engine_and_aligner_agree_and_the_engine_is_on_the_speech(aligner, spoken):
    """The engine's word starts against the aligner's; against the physical onset after a pause,
    the engine is the closer of the two (the aligner's 20 ms attention grid runs late)."""
    diffs, engine_err, aligner_err = [], [], []
    for turn in spoken:
        aligned = aligner.align(turn.audio, turn.text)
        onsets = [b for _, b in silent_spans(turn.audio)]
        for k, (e, f) in enumerate(zip(turn.words, aligned)):
            diffs.append(abs(e.start - f.start))
            mid = (e.start + f.start) / 2
            near = [o for o in onsets if abs(o - mid) < 0.15]
            if k and near:
                onset = min(near, key=lambda o: abs(o - mid))
                engine_err.append(abs(e.start - onset))
                aligner_err.append(abs(f.start - onset))
    assert statistics.median(diffs) < 0.08
    assert len(engine_err) >= 5
    assert statistics.median(engine_err) < 0.04
    assert statistics.median(engine_err) < statistics.median(aligner_err)


@pytest.mark.slow
def test_long_audio_is_aligned_through_transcription(aligner, spoken):
    audio = np.concatenate([t.audio for t in spoken] * 3)
    text = " ".join([t.text for t in spoken] * 3)
    assert audio.shape[0] / 16000 > 30
    words = aligner.align(audio, text)
    assert [w.word for w in words] == text.split()
    assert words[-1].end > 25 and words[len(words) // 2].start > 5


def test_snap_moves_edges_out_of_silence():
    audio = np.zeros(16000, np.float32)
    audio[4000:8000] = 0.3 * np.sin(np.arange(4000) * 0.3)
    (w,) = snap_to_speech((WordTiming("hi", 0.2, 0.6),), audio)
    assert w.start == pytest.approx(0.25, abs=0.011) and w.end == pytest.approx(0.5, abs=0.011)
