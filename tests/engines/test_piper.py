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


def _random_graph(shape: list[int]):
    """A graph of ONNX's two normal generators: RandomNormalLike on an input of `shape`'s rank
    (last axis free), RandomNormal of a fixed shape with a mean and a scale."""
    from onnx import TensorProto, helper

    like = helper.make_node("RandomNormalLike", ["x"], ["y"], dtype=1)
    fixed = helper.make_node("RandomNormal", [], ["y2"], shape=[3, 1000], mean=2.0, scale=3.0)
    dims = [*shape[:-1], None]
    graph = helper.make_graph(
        [like, fixed],
        "noise",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, dims),
            helper.make_tensor_value_info("y2", TensorProto.FLOAT, [3, 1000]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    model.ir_version = 8
    return model


def test_the_seeded_generator_draws_standard_normal_uncorrelated_noise():
    import onnx
    import onnxruntime as ort
    from scipy import stats

    from synth.engines.piper_noise import NOISE_INPUT, seeded_noise

    model = _random_graph([1, 2, 200_000])
    assert seeded_noise(model) == 2
    onnx.checker.check_model(model)
    assert not [n for n in model.graph.node if n.op_type.startswith("Random")]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.zeros((1, 2, 200_000), dtype=np.float32)

    def draw(seed: int) -> tuple[np.ndarray, np.ndarray]:
        return tuple(session.run(None, {"x": x, NOISE_INPUT: np.array([seed], dtype=np.int64)}))

    y, fixed = draw(7)
    z = y.ravel().astype(np.float64)
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(z).all()
    se = 1 / np.sqrt(z.size)  # 400,000 values: a mean's standard error of 0.0016
    assert abs(z.mean()) < 5 * se and abs(z.std() - 1) < 0.01
    for lag in (1, 2, 192, 200_000):  # neighbours, a VITS channel's stride, the other channel
        assert abs(np.corrcoef(z[:-lag], z[lag:])[0, 1]) < 5 * se
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(fixed.mean() - 2.0) < 0.3 and abs(fixed.std() - 3.0) < 0.2  # its mean and scale kept
    again, _ = draw(7)
    other, _ = draw(8)
    assert np.array_equal(y, again)  # a function of the seed alone
    assert abs(np.corrcoef(z, other.ravel())[0, 1]) < 5 * se  # another seed: other noise


def test_the_piper_graph_draws_its_noise_from_the_seed():
    import onnx

    from synth.engines.piper_noise import NOISE_INPUT, seeded_noise

    model = onnx.load(str(embedded_model_path()))
    randoms = [n.output[0] for n in model.graph.node if n.op_type.startswith("Random")]
    assert seeded_noise(model) == len(randoms) == 2  # the prior's and the duration predictor's
    assert not [n for n in model.graph.node if n.op_type.startswith("Random")]
    assert NOISE_INPUT in {i.name for i in model.graph.input}
    produced = {o for n in model.graph.node for o in n.output}
    assert set(randoms) <= produced  # their consumers read the generator's output


def test_piper_audio_is_a_function_of_text_voice_and_seed(engine, tmp_path: Path):
    voice = engine.voices()[3]
    text = "We should leave early tomorrow morning. Before the traffic gets bad, I mean."

    def say(eng, seed):
        return eng.synthesize([SynthesisRequest(text, voice, seed)])[0].samples

    first = say(engine, 11)
    assert not engine.deterministic  # noise on: another seed is another rendition
    assert np.array_equal(first, say(engine, 11))
    other = say(engine, 12)
    assert first.shape != other.shape or not np.array_equal(first, other)
    assert np.array_equal(say(engine, None), say(engine, 0))  # no seed: a fixed default
    # a fresh engine, its graph optimized anew in another cache: the same bytes
    fresh = load_engine(PiperConfig(model_cache=str(tmp_path)))
    assert np.array_equal(say(fresh, 11), first)
    assert list((tmp_path / "optimized").glob("*.onnx"))


def test_with_noise_off_the_seeded_graph_speaks_as_the_unseeded_one(tmp_path: Path):
    import onnx
    import onnxruntime as ort
    from piper import PiperVoice, SynthesisConfig

    from synth.engines.onnx_session import intra_op_threads, session_options
    from synth.engines.piper import _with_alignments, read_voice_config

    text = "The seeded graph says this as before. Every sample of it."
    with intra_op_threads(1):
        quiet = load_engine(PiperConfig(noise_scale=0.0, noise_w_scale=0.0, model_cache=str(tmp_path)))
        assert quiet.deterministic
        voice = next(v for v in quiet.voices() if v.params["vocal_tract"] == 1.04)
        (seeded,) = quiet.synthesize([SynthesisRequest(text, voice, 5)])
        (other_seed,) = quiet.synthesize([SynthesisRequest(text, voice, 6)])
        model = onnx.load(str(embedded_model_path()))
        _with_alignments(model)  # piper-tts's own graph: ONNX Runtime's unseeded RandomNormalLike
        plain = ort.InferenceSession(model.SerializeToString(), session_options(), ["CPUExecutionProvider"])
        config = read_voice_config(embedded_model_path())
        length = config.length_scale * voice.params["length_scale"] * voice.params["vocal_tract"]
        syn = SynthesisConfig(length_scale=length, noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False)
        from piper.voice import ESPEAK_DATA_DIR

        old = PiperVoice(session=plain, config=config, espeak_data_dir=Path(ESPEAK_DATA_DIR))
        before = np.concatenate([c.audio_float_array for c in old.synthesize(text, syn)])
    assert seeded.samples.tobytes() == before.tobytes() == other_seed.samples.tobytes()


def test_batching_keeps_each_requests_seed(engine):
    from synth.engines.batching import BatchingEngine

    voice = engine.voices()[0]
    requests = [SynthesisRequest("Seeds travel with their requests.", voice, s) for s in (1, 2, 1)]
    batching = BatchingEngine(engine, max_batch=8)
    try:
        batched = [a.samples for a in batching.synthesize(requests)]
    finally:
        batching.close()
    direct = [a.samples for a in engine.synthesize(requests)]
    assert all(np.array_equal(a, b) for a, b in zip(batched, direct))
    assert np.array_equal(batched[0], batched[2]) and not np.array_equal(batched[0][:1000], batched[1][:1000])


class _Deaf:
    """A recognizer that hears nothing (every take fails the check) and keeps what it was given:
    the ASR check's retries, not the recognizer, are what is tested."""

    def __init__(self):
        self.heard: list[bytes] = []

    def transcribe(self, audio: np.ndarray):
        self.heard.append(audio.tobytes())
        return type("Heard", (), {"text": ""})()

    def describe(self) -> dict:
        return {"asr_model": "deaf"}


def test_asr_retries_draw_their_own_noise_and_repeat_with_the_seed(engine):
    from synth.asr.recognizer import AsrCheck
    from synth.produce import asr_retry
    from synth.produce.pipeline import Pipeline, PipelineConfig
    from synth.seeding import noise_seed

    pipeline = Pipeline(engine, PipelineConfig(seed=3))
    voice = engine.voices()[0]
    text = "Say it again, and again, a little differently."
    heard = []
    for _ in range(2):
        deaf = _Deaf()
        check = AsrCheck(deaf, threshold=0.0, retries=2)  # type: ignore[arg-type]
        first = pipeline.renderer.finish(
            pipeline.renderer.pieces([(text, voice)], None, [noise_seed(3, "c", "turn:0")])[0]
        )
        seeds = lambda k: pipeline.take_seed("c", "turns[0].text:0", k)
        _, record = asr_retry.checked(check, pipeline.renderer, first, text, voice, seeds)
        assert record["attempts"] == 3
        heard.append(deaf.heard)
    assert len(set(heard[0])) == 3  # each retry another rendition
    assert heard[0] == heard[1]  # and the same ones again from the same seed
