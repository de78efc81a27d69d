"""Word timings: the pure mapping functions, the engine's own timings (Piper phoneme
alignments), and their trip through the pipeline (trimming, chunk joining, padding, splitting)."""

import numpy as np
import pytest

from synth.dialogs.build import build_dialog
from synth.domain import Source
from synth.engines.base import SynthesisRequest
from synth.produce.pipeline import Pipeline, PipelineConfig
from synth.words import WordTiming, align_units, regroup, shift, word_errors

HARD = "Well, I paid $25 for it in 1999 — don't you think that's a lot? Dr. Smith said no. U.S.A. e-mail"


def test_align_units_matches_words_to_a_timed_stream():
    words = ["ab", "cd", "ef"]
    units = [["a", "b"], ["c", "d"], ["e", "f"]]
    stream = [
        ("a", 0.0, 0.1),
        ("b", 0.1, 0.2),
        ("c", 0.3, 0.4),
        ("d", 0.4, 0.5),
        ("e", 0.6, 0.7),
        ("f", 0.7, 0.8),
    ]
    got = align_units(words, units, stream)
    assert [(w.word, w.start, w.end) for w in got] == [("ab", 0.0, 0.2), ("cd", 0.3, 0.5), ("ef", 0.6, 0.8)]


def test_a_word_the_engine_said_differently_gets_the_time_between_its_neighbours():
    # "25" phonemized alone differs from what the engine said in context: nothing matches
    words = ["paid", "25", "now"]
    units = [["p", "d"], ["x", "y"], ["n", "w"]]
    stream = [
        ("p", 0.0, 0.1),
        ("d", 0.1, 0.2),
        ("t", 0.3, 0.5),
        ("f", 0.5, 0.9),
        ("n", 1.0, 1.1),
        ("w", 1.1, 1.2),
    ]
    got = align_units(words, units, stream)
    assert got[1] == WordTiming("25", 0.2, 1.0)
    assert [w.word for w in got] == words


def test_regroup_joins_words_a_chunk_cut_apart():
    timed = [WordTiming("abc", 0.0, 1.0), WordTiming("def", 1.0, 2.0), WordTiming("gh", 2.5, 3.0)]
    got = regroup("abcdef gh", timed)
    assert got == (WordTiming("abcdef", 0.0, 2.0), WordTiming("gh", 2.5, 3.0))


def test_shift_clips_into_the_kept_audio():
    got = shift([WordTiming("a", 0.05, 0.3), WordTiming("b", 0.4, 1.2)], -0.1, 0.0, 1.0)
    assert got == (WordTiming("a", 0.0, pytest.approx(0.2)), WordTiming("b", pytest.approx(0.3), 1.0))


def test_word_errors_name_what_breaks_the_contract():
    ok = [{"word": "Hi", "start": 1.0, "end": 1.2}, {"word": "there.", "start": 1.3, "end": 1.6}]
    assert word_errors("Hi there.", ok, 1.0, 2.0) == []
    assert "do not spell" in word_errors("Hi you.", ok, 1.0, 2.0)[0]
    assert "outside the turn" in word_errors("Hi there.", ok, 1.1, 2.0)[0]
    backwards = [ok[1] | {"word": "Hi"}, ok[0] | {"word": "there."}]
    assert "before the word before it" in word_errors("Hi there.", backwards, 1.0, 2.0)[0]


@pytest.mark.parametrize(
    "text",
    [HARD, "Hello there, how are you doing today?", "Okay.", "It costs 3.50 at 7 p.m., right?"],
)
def test_the_engine_times_every_word_of_its_text(quiet_engine, text):
    (audio,) = quiet_engine.synthesize([SynthesisRequest(text, quiet_engine.voices()[0])])
    duration = audio.samples.shape[0] / audio.sample_rate
    assert [w.word for w in audio.words] == text.split()
    assert all(0 <= w.start <= w.end <= duration + 1e-6 for w in audio.words)
    assert all(a.start <= b.start for a, b in zip(audio.words, audio.words[1:]))
    # the words take most of the audio, not a sliver: the spans came from the durations
    assert sum(w.end - w.start for w in audio.words) > 0.5 * duration


def test_word_timings_follow_a_vocal_tract_scaled_voice(quiet_engine):
    """A derived voice is read at native_rate * r: its timings are in real seconds."""
    low = next(v for v in quiet_engine.voices() if v.params["vocal_tract"] == 0.8)
    (audio,) = quiet_engine.synthesize([SynthesisRequest("One two three four five.", low)])
    assert audio.words[-1].end == pytest.approx(audio.samples.shape[0] / audio.sample_rate, abs=0.25)


def _energy_at(audio: np.ndarray, t: float, rate: int = 16000) -> float:
    seg = audio[int(t * rate) : int((t + 0.03) * rate)]
    return float(np.sqrt(np.mean(seg**2))) if seg.size else 0.0


def test_turn_words_survive_trimming_joining_and_padding(quiet_engine):
    text = "First sentence here. " + HARD + " And a last one, to end."
    dialog = build_dialog([("A", text), ("B", "Fine.")], "w1", Source("test"))
    conv = Pipeline(quiet_engine).run(dialog)
    turn = conv.turns[0]
    assert " ".join(w.word for w in turn.words) == text
    assert turn.words[0].start >= 0.1 - 1e-6  # the turn's leading pad
    assert turn.words[-1].end <= turn.duration_sec - 0.1 + 0.03
    # words sit on speech: the audio right after each word's start is not silence
    loud = [_energy_at(turn.audio, w.start + 0.02) > 0.005 for w in turn.words if w.end - w.start > 0.08]
    assert sum(loud) >= 0.9 * len(loud)
    assert conv.extra["word_timing"] == {"method": "engine-durations", "model": quiet_engine.model}


def test_a_split_long_turn_keeps_each_parts_words(quiet_engine):
    text = " ".join(f"This is sentence number {n} of a rather long turn." for n in range(1, 9))
    dialog = build_dialog([("A", text)], "w2", Source("test"))
    conv = Pipeline(quiet_engine, PipelineConfig(max_turn_sec=8.0)).run(dialog)
    assert len(conv.turns) > 1
    for t in conv.turns:
        assert " ".join(w.word for w in t.words) == t.text
        assert all(0 <= w.start <= w.end <= t.duration_sec for w in t.words)


def test_metadata_puts_words_on_the_conversation_timeline(quiet_engine):
    from synth.dataset.metadata import conversation_metadata

    dialog = build_dialog([("A", "Good morning."), ("B", "Morning to you too.")], "w3", Source("test"))
    meta = conversation_metadata(Pipeline(quiet_engine).run(dialog))
    for t in meta.turns:
        assert word_errors(t.text, t.words, t.start_time, t.end_time) == []
        assert t.words[0]["start"] > t.start_time
