"""Backchannels: planned purely from the turns on the timeline, spoken in the listener's voice,
listed as events and never as turns."""

import random

import numpy as np
import pytest

from synth.dialogs.build import build_dialog
from synth.domain import Source, SynthesizedTurn, Voice
from synth.errors import ConfigError
from synth.produce import backchannels
from synth.produce.pipeline import Pipeline, PipelineConfig
from synth.words import WordTiming

VOICE = Voice("v", "test", "m", "s")


def turn(i, speaker, start, duration, words=None):
    return SynthesizedTurn(
        i,
        speaker,
        VOICE,
        "x",
        np.zeros(0, np.float32),
        16000,
        start,
        stored_samples=int(duration * 16000),
        words=words,
    )


def test_opportunities_and_rate():
    turns = [turn(i, "AB"[i % 2], 10.0 * i, 9.0) for i in range(400)]  # 9 s: two opportunities each
    for rate in (0.0, 0.3, 1.0):
        got = backchannels.plan(turns, ["A", "B"], rate, random.Random(4))
        assert len(got) == pytest.approx(rate * 800, abs=4 * (800 * 0.25) ** 0.5)
    short = [turn(i, "AB"[i % 2], 3.0 * i, 1.9) for i in range(50)]
    assert backchannels.plan(short, ["A", "B"], 1.0, random.Random(0)) == []


def test_a_backchannel_lands_after_a_word_inside_the_turn_in_the_listeners_voice():
    words = tuple(WordTiming(f"w{k}", 0.3 * k, 0.3 * k + 0.2) for k in range(20))
    words = words[:8] + tuple(WordTiming(w.word, w.start + 0.4, w.end + 0.4) for w in words[8:])  # a pause
    turns = [turn(0, "A", 0.0, 1.5), turn(1, "B", 2.5, 6.6, words), turn(2, "A", 9.5, 1.0)]
    (bc,) = backchannels.plan(turns, ["A", "B"], 1.0, random.Random(1))
    assert bc.turn_id == 1 and bc.listener == "A" and bc.text in backchannels.TEXTS
    pause_end = 2.5 + words[7].end  # the widest pause is after word 7
    assert pause_end + 0.05 - 1e-6 <= bc.start <= pause_end + 0.3 + 1e-6


def test_fits_keeps_clear_of_the_listeners_own_speech():
    turns = [turn(0, "A", 0.0, 4.0), turn(1, "B", 3.5, 4.0)]  # B overlaps A's end
    assert not backchannels.fits(3.3, 0.4, "B", turns, [])
    assert backchannels.fits(1.0, 0.4, "B", turns, [])
    assert not backchannels.fits(1.0, 0.4, "B", turns, [(1.2, 1.5)])


def test_pipeline_events_are_heard_never_turns(quiet_engine):
    text = "I went to the market this morning, and it was much busier than I expected it to be. " * 2
    dialog = build_dialog(
        [("A", "How was your day?"), ("B", text.strip()), ("A", "Sounds tiring.")], "b1", Source("t")
    )
    config = PipelineConfig(seed=2, backchannels=1.0)
    conv = Pipeline(quiet_engine, config).run(dialog)
    assert len(conv.turns) == 3 and conv.events
    for e in conv.events:
        assert e.kind == "backchannel" and e.speaker == "A"
        assert e.voice == conv.casting["A"] and e.audio.size > 0
        assert conv.turns[1].start_time < e.start < e.end < conv.turns[1].end_time
    assert conv.extra["backchannels"] == {"rate": 1.0, "count": len(conv.events)}
    # off: none, and the turns are exactly where they were
    plain = Pipeline(quiet_engine, PipelineConfig(seed=2)).run(dialog)
    assert plain.events == [] and [t.start_time for t in plain.turns] == [t.start_time for t in conv.turns]


def test_rate_must_be_a_probability():
    with pytest.raises(ConfigError, match="backchannels"):
        PipelineConfig(backchannels=1.5)
