import numpy as np
import pytest

from synth.audio import SAMPLE_RATE, active_dbfs
from synth.dialogs.build import build_dialog
from synth.domain import Source
from synth.errors import ConfigError
from synth.produce.pipeline import Pipeline, PipelineConfig
from synth.produce.timeline import GapDistribution

TURNS = [
    ("A", "Could you pass me the salt, please?"),
    ("B", "Sure, here you go. Careful, the shaker is almost empty."),
    ("A", "Thanks."),
]


def make_dialog(cid="p1", turns=TURNS, voices=None):
    return build_dialog(turns, cid, Source("test"), voices)


def test_turns_are_placed_on_a_timeline(quiet_engine):
    pipe = Pipeline(quiet_engine, PipelineConfig(seed=5, gap=GapDistribution.parse("fixed:0.5")))
    conv = pipe.run(make_dialog())
    assert [t.turn_id for t in conv.turns] == [0, 1, 2]
    assert conv.turns[0].start_time == 0.0
    for prev, cur in zip(conv.turns, conv.turns[1:]):
        assert cur.start_time == pytest.approx(prev.end_time + 0.5, abs=1e-3)
    assert conv.total_duration_sec == pytest.approx(conv.turns[-1].end_time)
    assert all(t.sample_rate == SAMPLE_RATE and t.audio.dtype == np.float32 for t in conv.turns)
    assert conv.turns[0].voice == conv.turns[2].voice != conv.turns[1].voice


def test_audio_is_bounded_and_loudness_consistent(quiet_engine):
    conv = Pipeline(quiet_engine).run(make_dialog())
    levels = [active_dbfs(t.audio, SAMPLE_RATE) for t in conv.turns]
    assert max(levels) - min(levels) < 1.5
    for t in conv.turns:
        assert np.max(np.abs(t.audio)) < 0.9
        lead = np.flatnonzero(np.abs(t.audio) > 0.01)
        assert lead[0] / SAMPLE_RATE <= 0.2 and (len(t.audio) - lead[-1]) / SAMPLE_RATE <= 0.2


def test_long_turns_are_split_and_joined(quiet_engine):
    long_text = " ".join(f"This is sentence number {i} of a long answer." for i in range(12))
    pipe = Pipeline(quiet_engine, PipelineConfig(max_chunk_chars=60))
    (turn,) = pipe.iter_turns(make_dialog(turns=[("A", long_text)]))
    assert turn.duration_sec > 20


def test_noise_free_synthesis_is_reproducible(quiet_engine):
    pipe = Pipeline(quiet_engine, PipelineConfig(seed=9))
    a, b = pipe.run(make_dialog()), pipe.run(make_dialog())
    for x, y in zip(a.turns, b.turns):
        assert np.array_equal(x.audio, y.audio) and x.start_time == y.start_time


def test_samples_and_token_counts_are_attached(quiet_engine):
    from synth import sample_builder

    conv = Pipeline(quiet_engine, sample_builder=sample_builder()).run(make_dialog())
    tokens = conv.tokens
    assert "tokens" not in conv.extra
    assert len(conv.samples) == 3
    assert tokens["total_tokens"] == tokens["text_tokens"] + tokens["speech_tokens"]
    assert tokens["speech_tokens"] >= int(conv.speech_duration_sec * 10)


def test_unknown_override_fails_early(quiet_engine):
    with pytest.raises(ConfigError, match="voice_override: unknown voice 'nobody'"):
        Pipeline(quiet_engine, PipelineConfig(voice_override={"A": "nobody"}))
