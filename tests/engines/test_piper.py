"""The Piper engine on the real embedded model, and on user models the test makes from it."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from synth.audio import SAMPLE_RATE, resample
from synth.engines import PiperConfig, SynthesisRequest, load_engine
from synth.engines.piper import SPEAKING_RATES, VOCAL_TRACT_FACTORS, embedded_model_path
from synth.errors import SynthError
from tests.helpers import build_piper_trio


def f0(x: np.ndarray, rate: int) -> float:
    """Median pitch of voiced frames by autocorrelation (60-400 Hz)."""
    n, hop = int(0.04 * rate), int(0.01 * rate)
    lo, hi = rate // 400, rate // 60
    pitches = []
    for start in range(0, len(x) - n, hop):
        frame = x[start : start + n] - x[start : start + n].mean()
        if np.sqrt(np.mean(frame**2)) < 0.02:
            continue
        ac = np.correlate(frame, frame, "full")[n - 1 :]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.5 * ac[0]:
            pitches.append(rate / lag)
    return float(np.median(pitches))


def test_embedded_catalog(engine):
    voices = engine.voices()
    assert len(voices) == len(VOCAL_TRACT_FACTORS) * len(SPEAKING_RATES)
    assert len({v.id for v in voices}) == len(voices)
    assert all(v.engine == "piper" and v.model == "en_US-joe-medium.onnx" for v in voices)
    assert {"base_speaker", "pitch", "rate"} <= set(voices[0].meta)
    assert engine.describe()["native_sample_rate"] == 22050


def test_vocal_tract_scaling_moves_pitch_not_duration(quiet_engine):
    by_id = {v.id: v for v in quiet_engine.voices()}
    text = "We should leave early tomorrow morning, before the traffic gets bad."
    out = {}
    for vid in ("joe-vt0.80", "joe-vt1.20"):
        (audio,) = quiet_engine.synthesize([SynthesisRequest(text, by_id[vid])])
        out[vid] = resample(audio.samples, audio.sample_rate)
    d_low, d_high = (len(out[v]) / SAMPLE_RATE for v in ("joe-vt0.80", "joe-vt1.20"))
    # VITS durations are not exactly linear in length_scale: within 25%, not equal
    assert abs(d_low - d_high) / d_low < 0.25
    ratio = f0(out["joe-vt1.20"], SAMPLE_RATE) / f0(out["joe-vt0.80"], SAMPLE_RATE)
    assert 1.3 < ratio < 1.7  # 1.20 / 0.80 = 1.5


def test_speaking_rate_changes_duration(quiet_engine):
    by_id = {v.id: v for v in quiet_engine.voices()}
    text = "The quick brown fox jumps over the lazy dog near the river bank."
    lengths = {}
    for vid in ("joe-vt1.04-fast", "joe-vt1.04-slow"):
        (audio,) = quiet_engine.synthesize([SynthesisRequest(text, by_id[vid])])
        lengths[vid] = len(audio.samples) / audio.sample_rate
    assert 1.08 < lengths["joe-vt1.04-slow"] / lengths["joe-vt1.04-fast"] < 1.35


def _copy_model(tmp_path: Path, name: str) -> Path:
    src = embedded_model_path()
    dst = tmp_path / name
    shutil.copy(src, dst)
    shutil.copy(f"{src}.json", f"{dst}.json")
    return dst


def test_user_model_by_path(tmp_path: Path):
    model = _copy_model(tmp_path, "en_GB-tester-low.onnx")
    eng = load_engine(PiperConfig(str(model)))
    assert eng.voices()[0].id.startswith("tester-vt")
    with pytest.raises(SynthError, match="does not exist"):
        load_engine(PiperConfig(str(tmp_path / "missing.onnx")))
    (tmp_path / "noconf.onnx").write_bytes(b"x")
    with pytest.raises(SynthError, match="config"):
        load_engine(PiperConfig(str(tmp_path / "noconf.onnx")))


def test_multi_speaker_model_exposes_each_speaker(tmp_path: Path):
    """A multi-speaker Piper model: the embedded graph given a real `sid` input (added to the
    audio times zero, so it is used but changes nothing), and a config with three named
    speakers; word timings come through the patched graph as for a real model."""
    path = build_piper_trio(tmp_path)
    eng = load_engine(PiperConfig(str(path)))
    voices = eng.voices()
    assert [v.id for v in voices] == ["trio-ann", "trio-bob", "trio-cyd"]
    assert [v.params["speaker_index"] for v in voices] == [0, 1, 2]
    (audio,) = eng.synthesize([SynthesisRequest("Hello from the second speaker.", voices[1])])
    assert audio.samples.size > 10000 and audio.sample_rate == 22050
    assert [w.word for w in audio.words] == ["Hello", "from", "the", "second", "speaker."]


def test_the_session_is_made_on_first_use_from_the_optimized_graph_the_cache_keeps(tmp_path: Path):
    config = PiperConfig(model_cache=str(tmp_path), noise_scale=0.0, noise_w_scale=0.0)
    first = load_engine(config)
    assert first.voices() and first._voice.session._session is None  # listing voices loads nothing
    assert not (tmp_path / "optimized").exists()
    request = [SynthesisRequest("The cache keeps the graph.", first.voices()[0])]
    (made,) = first.synthesize(request)
    (kept,) = list((tmp_path / "optimized").glob("en_US-joe-medium.*.onnx"))
    again = load_engine(config)
    (read,) = again.synthesize(request)  # from the kept graph: the same audio and word timings
    assert np.array_equal(made.samples, read.samples) and made.words == read.words
    kept.write_bytes(b"not a graph")  # a damaged cache file is made again, not an error
    (mended,) = load_engine(config).synthesize(request)
    assert np.array_equal(mended.samples, made.samples) and kept.stat().st_size > 1_000_000
