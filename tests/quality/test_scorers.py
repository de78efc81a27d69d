"""The scorers on real speech: the embedded Piper voice (noise off) speaks the turns, the embedded
Whisper tiny.en, speechmos's DNSMOS models and the speaker encoder score them. Known-bad audio
(noise, clipping, silence, a long silent lead, the wrong text, another speaker's voice) must
score worse than the good turn on the scores meant to catch it. The pure parts (signal checks,
the stored block, the summary, the sample) are checked against numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from synth.errors import ConfigError
from synth.quality import (
    KEYS,
    SCORER_KEYS,
    QualityConfig,
    TurnAudio,
    build_scorers,
    conversation_summary,
    in_sample,
    quality_block,
    score_turns,
    stale,
)
from synth.quality.intelligibility import cer
from synth.quality.signal import score_signal

TEXT = "I spent the whole morning at the garage, and the mechanic kept finding new problems with the brakes."
OTHER_TEXT = "Could you send me the quarterly report before the meeting on Thursday afternoon?"


@pytest.fixture(scope="module")
def spoken(quiet_engine):
    """(scorers, voice a, voice b, a's turn, the same text in b's voice)."""
    from synth.produce.render import TurnRenderer
    from synth.voices.references import reference_embeddings

    renderer = TurnRenderer(quiet_engine)
    voices = quiet_engine.voices()
    a, b = voices[0], voices[-1]  # joe-vt0.80 and joe-vt1.20-slow: far apart
    refs = reference_embeddings(quiet_engine, [a.id, b.id], renderer.render)
    scorers = build_scorers(QualityConfig(), references=refs)
    return scorers, a.id, b.id, renderer.render(TEXT, a), renderer.render(TEXT, b)


@pytest.mark.slow
def test_known_bad_turns_score_worse_than_a_good_one(spoken):
    scorers, a, b, good, other_voice = spoken
    rng = np.random.default_rng(0)
    rms = float(np.sqrt(np.mean(good**2)))
    noisy = np.clip(good + rng.standard_normal(len(good)).astype(np.float32) * rms, -1, 1)  # 0 dB SNR
    cases = {
        "good": TurnAudio(good, TEXT, a, "s", (b,)),
        "noise": TurnAudio(noisy, TEXT, a, "s", (b,)),
        "clipping": TurnAudio(np.clip(good * 30, -1, 1), TEXT, a, "s", (b,)),
        "silence": TurnAudio(np.zeros(32000, np.float32), TEXT, a, "s", (b,)),
        "lead": TurnAudio(np.concatenate([np.zeros(24000, np.float32), good]), TEXT, a, "s", (b,)),
        "wrong_text": TurnAudio(good, OTHER_TEXT, a, "s", (b,)),
        "other_voice": TurnAudio(other_voice, TEXT, a, "s", (b,)),
    }
    got = dict(zip(cases, score_turns(scorers, list(cases.values()))))
    ok = got["good"]
    assert list(ok) == ["scorers", *KEYS]  # every scorer ran, its keys in the stored order
    assert ok["scorers"] == {s.name: s.version for s in scorers}
    assert ok["wer"] <= 0.1 and ok["clipped"] == 0 and ok["speaker_sim"] > 0.85
    assert ok["speaker_sim_other"] < ok["speaker_sim"] - 0.2
    assert 2.0 < ok["dnsmos_ovrl"] < 4.5 and 0.05 <= ok["lead_silence_sec"] <= 0.15
    # noise: DNSMOS's background and overall fall, the transcript breaks, the voice blurs
    noise = got["noise"]
    assert noise["dnsmos_bak"] < ok["dnsmos_bak"] - 1 and noise["dnsmos_ovrl"] < ok["dnsmos_ovrl"] - 0.5
    assert noise["wer"] > ok["wer"] + 0.3 and noise["speaker_sim"] < ok["speaker_sim"] - 0.1
    # clipping: the clipped fraction, and DNSMOS's signal score
    clip = got["clipping"]
    assert clip["clipped"] > 0.05 and clip["dnsmos_sig"] < ok["dnsmos_sig"] - 0.3
    assert clip["loudness_db"] > ok["loudness_db"] + 10
    # silence: nothing recognized, no voice, all of it silent
    silence = got["silence"]
    assert silence["wer"] == 1.0 and silence["asr_text"] == "" and silence["speaker_sim"] == 0.0
    assert silence["lead_silence_sec"] == 2.0 and silence["loudness_db"] == -100.0
    assert silence["dnsmos_ovrl"] < ok["dnsmos_ovrl"]
    # a long silent lead: 1.5 s more than the good turn's
    assert got["lead"]["lead_silence_sec"] == pytest.approx(ok["lead_silence_sec"] + 1.5, abs=0.011)
    # the wrong text: the audio is fine, its words are not the turn's
    assert got["wrong_text"]["wer"] > 0.8 and got["wrong_text"]["dnsmos_ovrl"] == ok["dnsmos_ovrl"]
    # another speaker's voice: far from its own voice, close to the other one
    other = got["other_voice"]
    assert other["speaker_sim"] < ok["speaker_sim"] - 0.2
    assert other["speaker_sim_other"] > other["speaker_sim"]


def test_the_speaker_scorer_names_a_voice_without_a_reference(spoken):
    scorers, a, _b, good, _ = spoken
    speaker = next(s for s in scorers if s.name == "speaker")
    with pytest.raises(Exception, match="c1 turn 3: no reference embedding for voice 'nobody'"):
        speaker.score([TurnAudio(good, TEXT, "nobody", "s", (), "c1", 3)])
    alone = speaker.score([TurnAudio(good, TEXT, a, "s", ())])[0]  # a monologue: no other voice
    assert set(alone) == {"speaker_sim"}


def test_signal_checks_by_hand():
    rate = 16000
    tone = (0.5 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate)).astype(np.float32)  # 1 s
    audio = np.concatenate([np.zeros(rate // 2, np.float32), tone, np.zeros(rate // 4, np.float32)])
    got = score_signal(audio, "one two three four")
    assert got["lead_silence_sec"] == 0.5 and got["trail_silence_sec"] == 0.25
    assert got["clipped"] == 0.0 and got["words_per_sec"] == 4.0
    assert got["loudness_db"] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.05)
    square = np.sign(tone).astype(np.float32)
    square[square == 0] = 1.0
    assert score_signal(square, "x")["clipped"] == 1.0
    assert score_signal(np.zeros(8000, np.float32), "a b") == {
        "clipped": 0.0,
        "loudness_db": -100.0,
        "lead_silence_sec": 0.5,
        "trail_silence_sec": 0.5,
        "words_per_sec": 0.0,
    }


def test_character_error_rate_is_normalized_as_the_wer_is():
    assert cer("It costs $5!", "it costs five dollars") == 0.0
    assert cer("abcd", "abed") == 0.25
    assert cer("", "") == 0.0 and cer("", "x") == 1.0


def test_the_block_merges_a_rerun_scorer_and_keeps_the_others():
    first = quality_block(
        {"speaker": "1/x", "signal": "1"},
        {"clipped": 0.0, "speaker_sim": 0.9, "speaker_sim_other": 0.5, "words_per_sec": 3.0},
    )
    first["takes"] = 2  # added by the gates: kept
    again = quality_block(
        {"speaker": "2/x", "intelligibility": "1/m"}, {"speaker_sim": 0.8, "wer": 0.1}, first
    )
    assert again == {
        "scorers": {"intelligibility": "1/m", "speaker": "2/x", "signal": "1"},
        "wer": 0.1,
        "speaker_sim": 0.8,  # speaker_sim_other of the old version is gone with it
        "clipped": 0.0,
        "words_per_sec": 3.0,
        "takes": 2,
    }

    class Fake:
        def __init__(self, name, version):
            self.name, self.version = name, version

    scorers = [Fake("speaker", "2/x"), Fake("signal", "2"), Fake("dnsmos", "1")]
    assert [s.name for s in stale(scorers, again)] == ["signal", "dnsmos"]
    assert [s.name for s in stale(scorers, None)] == ["speaker", "signal", "dnsmos"]


def test_conversation_summary():
    blocks = [
        {"scorers": {"signal": "1"}, "clipped": 0.0, "words_per_sec": 3.0},
        None,  # a turn outside the sample
        {"scorers": {"signal": "1", "intelligibility": "1"}, "wer": 0.5, "asr_text": "x", "clipped": 0.25,
         "words_per_sec": 2.0},
        {"takes": 3},  # no scorer ran: not a scored turn
    ]  # fmt: skip
    assert conversation_summary(blocks) == {
        "clipped": {"min": 0.0, "mean": 0.125, "max": 0.25},
        "words_per_sec": {"min": 2.0, "mean": 2.5, "max": 3.0},
        "wer": {"min": 0.5, "mean": 0.5, "max": 0.5},
        "turns_scored": 2,
    }
    assert conversation_summary([None, {}]) is None
    flagged = {"scorers": {"intelligibility": "1"}, "wer": 0.75, "gate_failed": ["wer<=0.2"], "takes": 2}
    summary = conversation_summary([blocks[0], flagged, {**flagged, "gate_failed": []}])
    assert summary is not None and summary["turns_flagged"] == 1 and summary["turns_scored"] == 3
    assert "turns_flagged" not in conversation_summary(blocks)  # absent when no gate flagged a turn


def test_the_sample_is_deterministic_near_its_fraction_and_nested():
    ids = [(f"c{i}", t) for i in range(200) for t in range(10)]
    half = {k for k in ids if in_sample(*k, 0.5, seed=1)}
    assert half == {k for k in reversed(ids) if in_sample(*k, 0.5, seed=1)}
    assert 0.45 < len(half) / len(ids) < 0.55
    assert {k for k in ids if in_sample(*k, 0.2, seed=1)} <= half
    assert half != {k for k in ids if in_sample(*k, 0.5, seed=2)}
    assert all(in_sample(*k, 1.0) for k in ids[:50])


def test_config_names_bad_scorers_and_fractions():
    assert QualityConfig("signal,dnsmos").scorers == ("dnsmos", "signal")
    assert QualityConfig("all").scorers == tuple(SCORER_KEYS)
    with pytest.raises(ConfigError, match="unknown scorer 'mos'"):
        QualityConfig("signal,mos")
    with pytest.raises(ConfigError, match=r"must be in \(0, 1\]"):
        QualityConfig(score_sample=0.0)
    with pytest.raises(ConfigError, match="reference embeddings"):
        build_scorers(QualityConfig("speaker"))


def test_dnsmos_runs_the_threads_it_is_given_and_scores_as_speechmos_does():
    """Its sessions take the process's intra-op threads (a worker's share of the cores), not a
    thread per core; the scores stay speechmos's own."""
    import os

    from speechmos import dnsmos

    from synth.engines.onnx_session import intra_op_threads
    from synth.quality.base import TurnAudio
    from synth.quality.dnsmos import DnsmosScorer

    with intra_op_threads(1):
        scorer = DnsmosScorer()
    for session in (scorer._model.onnx_sess, scorer._model.p808_onnx_sess):
        assert session.get_session_options().intra_op_num_threads == 1
    rng = np.random.default_rng(3)
    t = np.arange(16000 * 2) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2).astype(np.float32)
    audio += 0.01 * rng.standard_normal(audio.size).astype(np.float32)
    models = os.path.join(os.path.dirname(os.path.abspath(dnsmos.__file__)), "dnsmos_models")
    theirs = dnsmos.DNSMOS(os.path.join(models, "sig_bak_ovr.onnx"), os.path.join(models, "model_v8.onnx"))
    want = theirs(audio, dnsmos.SR, False)
    got = scorer.score([TurnAudio(samples=audio, text="")])[0]
    assert got["dnsmos_ovrl"] == round(float(want["ovrl_mos"]), 4)
    assert got["dnsmos_p808"] == round(float(want["p808_mos"]), 4)
