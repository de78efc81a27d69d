"""The Coqui VITS engine on a tiny multi-speaker model the tests build and save (config,
checkpoint, speakers file, speaker table): real loading code, batched and unbatched synthesis,
`synth generate`, `synth voices` and the server's dynamic batcher."""

from __future__ import annotations

import json
import shutil
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from synth.engines import CoquiConfig, SynthesisRequest, load_engine
from synth.errors import SynthError
from synth.testing import build_random_vits
from synth.workflows.validate import validate_dataset
from tests.helpers import run_cli, write_jsonl

INFO = {
    "p225": {"age": "23", "gender": "F", "accent": "English", "region": "Southern England"},
    "p226": {"age": "22", "gender": "M", "accent": "English", "region": "Surrey"},
    "p245": {"age": "25", "gender": "M", "accent": "Irish", "region": "Dublin"},
    "p294": {"age": "33", "gender": "F", "accent": "American", "region": "San Francisco"},
}
ORDER = ["p294", "p245", "p225", "p226"]  # model indices differ from the table's order


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_random_vits(
        tmp_path_factory.mktemp("vits") / "tiny_vctk", list(INFO), speaker_info=INFO, speaker_order=ORDER
    )


@pytest.fixture(scope="module")
def coqui(tiny_model):
    return load_engine(CoquiConfig(str(tiny_model), device="cpu", noise_scale=0.0, noise_w_scale=0.0))


def test_speakers_become_voices_with_metadata_by_name(coqui):
    voices = {v.speaker: v for v in coqui.voices()}
    assert set(voices) == set(INFO)
    for name, meta in INFO.items():
        v = voices[name]
        assert v.params["speaker_index"] == ORDER.index(name)
        assert v.meta["gender"] == {"F": "female", "M": "male"}[meta["gender"]]
        assert v.meta["accent"] == meta["accent"] and v.meta["region"] == meta["region"]
    assert coqui.describe()["device"] == "cpu"


def test_batched_equals_alone(coqui):
    voices = coqui.voices()
    texts = [
        "good morning to you all.",
        "yes.",
        "the train to the coast leaves from platform nine today.",
        "see you tomorrow then",
        "a",
        "what a long and winding road this has been, my friend.",
    ]
    reqs = [SynthesisRequest(t, voices[i % len(voices)]) for i, t in enumerate(texts)]
    batched = coqui.synthesize(reqs)
    for req, got in zip(reqs, batched):
        (alone,) = coqui.synthesize([req])
        assert len(got.samples) == len(alone.samples) > 0
        np.testing.assert_allclose(got.samples, alone.samples, atol=1e-5)
    lengths = [len(a.samples) for a in batched]
    assert len(set(lengths)) > 3  # different lengths: padding was really exercised


def test_alone_equals_coquis_own_inference_and_speakers_differ(coqui):
    """The decoder masks must leave a lone turn exactly as coqui's `Vits.inference` makes it, the
    speaker conditioning included: each speaker sounds different."""
    import torch

    text = "the quick brown fox jumps over the lazy dog."
    ids = torch.tensor([coqui.net.tokenizer.text_to_ids(text)])
    outputs = []
    for voice in coqui.voices():
        (ours,) = coqui.synthesize([SynthesisRequest(text, voice)])
        with torch.inference_mode():
            ref = coqui.net.inference(
                ids,
                aux_input={
                    "x_lengths": torch.tensor([ids.shape[1]]),
                    "speaker_ids": torch.tensor([voice.params["speaker_index"]]),
                },
            )
        expected = ref["model_outputs"][0, 0].numpy()
        np.testing.assert_allclose(ours.samples, expected[: len(ours.samples)], atol=1e-6)
        assert len(ours.samples) == len(expected)
        outputs.append(ours.samples)
    for i in range(len(outputs)):
        for j in range(i + 1, len(outputs)):
            assert np.abs(outputs[i] - outputs[j]).max() > 1e-3


@pytest.mark.slow
def test_synth_voices_and_generate_with_a_model_folder(tiny_model, tmp_path):
    res = run_cli("voices", "--engine", "coqui", "--model", str(tiny_model), "--json")
    assert res.returncode == 0, res.stderr
    listed = {v["speaker"]: v for v in map(json.loads, res.stdout.splitlines())}
    assert listed["p245"]["meta"]["accent"] == "Irish" and listed["p245"]["id"] == "tiny_vctk-p245"
    dialogs = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"conversation_id": "c1", "turns": ["hello there.", "hi, how are you?", "fine, thanks."]},
            {
                "conversation_id": "c2",
                "turns": [
                    {"speaker": "x", "text": "one"},
                    {"speaker": "y", "text": "two"},
                    {"speaker": "z", "text": "three"},
                ],
                "voices": {"x": "tiny_vctk-p225"},
            },
        ],
    )
    out = tmp_path / "ds"
    res = run_cli(
        "generate",
        "--engine",
        "coqui",
        "--model",
        str(tiny_model),
        "--device",
        "cpu",
        "--dialogs",
        str(dialogs),
        "--out",
        str(out),
        "--quiet",
    )
    assert res.returncode == 0, res.stderr
    assert validate_dataset(out).ok
    meta = json.loads((out / "conversations" / "c2" / "metadata.json").read_text())
    assert meta["voices"]["x"]["id"] == "tiny_vctk-p225" and meta["engine"]["engine"] == "coqui"
    assert len({v["id"] for v in meta["voices"].values()}) == 3


@pytest.mark.slow
def test_generate_batches_turns_across_conversations_in_flight(tiny_model, tmp_path):
    """`synth generate --in-flight N`: N conversations at once, their turns in shared engine
    batches; with noise off the dataset sounds the same as one conversation at a time."""
    import soundfile as sf

    dialogs = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {
                "conversation_id": f"c{i}",
                "turns": [
                    f"conversation {i} begins here.",
                    "a reply.",
                    f"and turn three of {i}, which is longer than the others.",
                ],
            }
            for i in range(6)
        ],
    )
    outs = {}
    for in_flight in ("1", "4"):
        out = outs[in_flight] = tmp_path / f"ds{in_flight}"
        res = run_cli(
            "generate",
            "--engine",
            "coqui",
            "--model",
            str(tiny_model),
            "--device",
            "cpu",
            "--dialogs",
            str(dialogs),
            "--out",
            str(out),
            "--quiet",
            "--noise-scale",
            "0",
            "--noise-w",
            "0",
            "--in-flight",
            in_flight,
            "--max-batch",
            "8",
            "--max-wait-ms",
            "200",
        )
        assert res.returncode == 0, res.stderr
        assert validate_dataset(out).ok
    for i in range(6):
        for turn in range(3):
            one, _ = sf.read(outs["1"] / "conversations" / f"c{i}" / f"turn_{turn}.wav", dtype="int16")
            four, _ = sf.read(outs["4"] / "conversations" / f"c{i}" / f"turn_{turn}.wav", dtype="int16")
            assert len(one) == len(four) and np.abs(one.astype(int) - four).max() <= 2
    res = run_cli("generate", "--dialogs", str(dialogs), "--out", str(tmp_path / "bad"), "--in-flight", "0")
    assert res.returncode != 0 and "--in-flight" in res.stderr


def test_conversations_in_flight_share_batches(coqui, tmp_path):
    """The library path behind --in-flight: turns of different conversations meet in one batch."""
    from synth.dataset.writer import DatasetWriter
    from synth.dialogs.build import build_dialog
    from synth.domain import Source
    from synth.engines.batching import BatchingEngine
    from synth.produce.pipeline import Pipeline
    from synth.workflows.runner import run_producer

    sizes = []
    batching = BatchingEngine(
        coqui, max_batch=16, max_wait_ms=200, on_batch=lambda n, _depth: sizes.append(n)
    )
    dialogs = [
        build_dialog([("A", "hi there."), ("B", "hello."), ("A", "bye now.")], f"k{i}", Source("test"))
        for i in range(4)
    ]
    summary = run_producer(dialogs, Pipeline(batching), DatasetWriter(tmp_path / "ds"), workers=4)
    batching.close()
    assert summary.generated == 4 and validate_dataset(tmp_path / "ds").ok
    assert max(sizes) > 3  # more turns than one conversation has


def test_model_by_name_from_the_model_cache(tiny_model, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(tiny_model, cache / "tts" / "tts_models--en--vctk--vits")
    engine = load_engine(CoquiConfig("tts_models/en/vctk/vits", device="cpu", model_cache=str(cache)))
    assert engine.model == "tts_models/en/vctk/vits"
    assert {v.id for v in engine.voices()} == {f"vctk-{s}" for s in INFO}


def test_bad_models(tmp_path, tiny_model):
    with pytest.raises(SynthError, match="model: the coqui engine needs one"):
        load_engine(CoquiConfig(None))
    res = run_cli("voices", "--engine", "coqui")
    assert res.returncode == 2 and "--model: the coqui engine needs one" in res.stderr
    (tmp_path / "empty").mkdir()
    with pytest.raises(SynthError, match="no config.json"):
        load_engine(CoquiConfig(str(tmp_path / "empty"), device="cpu"))
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    (broken / "model_file.pth").unlink()
    with pytest.raises(SynthError, match="no checkpoint"):
        load_engine(CoquiConfig(str(broken), device="cpu"))
    import torch
    from TTS.config import load_config

    torch.save({"model": {}, "config": load_config(str(broken / "config.json"))}, broken / "model_file.pth")
    with pytest.raises(SynthError, match="pickled Python object .*VitsConfig"):
        load_engine(CoquiConfig(str(broken), device="cpu"))
    with pytest.raises(SynthError, match="cannot load it by name"):
        load_engine(CoquiConfig("tts_models/xx/nothing/vits", device="cpu", model_cache=str(tmp_path / "c")))


def test_server_batches_concurrent_streams(coqui, tmp_path):
    from synth.engines.batching import BatchConfig
    from synth_client import SynthClient
    from synth_server import ServerOptions, ServiceConfig, SynthServer, generation

    config = ServiceConfig(
        out=tmp_path / "ds", generation=generation(batch=BatchConfig(max_batch=16, max_wait_ms=50))
    )
    srv = SynthServer(coqui, config, ServerOptions(host="127.0.0.1", port=0, metrics_port=0)).start()
    results: dict[int, list] = {}
    barrier = threading.Barrier(8)

    def run(i: int) -> None:
        with SynthClient(f"127.0.0.1:{srv.port}") as c:
            barrier.wait()
            results[i] = list(
                c.synthesize(
                    [("A", f"stream {i} says hello."), ("B", "and goodbye."), ("A", f"number {i} again.")],
                    conversation_id=f"s{i}",
                )
            )

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    text = urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics", timeout=10).read().decode()
    srv.stop(grace=0)
    for i, events in results.items():
        assert [e.turn_id for e in events[:-1]] == [0, 1, 2]
        assert events[-1].conversation_id == f"s{i}"
        assert events[0].transcript == f"stream {i} says hello."
    assert len(results) == 8 and validate_dataset(tmp_path / "ds").ok
    buckets = {
        line.split('le="')[1].split('"')[0]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("synth_batch_size_bucket")
    }
    batches = buckets["+Inf"]
    assert batches < 8 * 3 + 1  # 24 turns (+ the warm-up) in fewer engine calls
    assert buckets["1.0"] < batches  # some batch held more than one turn


def _tiny_config():
    from TTS.tts.configs.vits_config import VitsConfig

    config = VitsConfig()
    args = config.model_args
    args.hidden_channels, args.hidden_channels_ffn_text_encoder = 16, 32
    args.num_layers_text_encoder = args.num_layers_flow = args.num_layers_posterior_encoder = 1
    args.num_heads_text_encoder = 2
    args.upsample_initial_channel_decoder = 16
    return config


@pytest.mark.slow
def test_models_saved_other_ways_load(tmp_path):
    """As a user's training run leaves them: the speakers file referenced by an absolute path of
    the training machine (copied beside the model under its own name), a bare state dict in
    checkpoint_<step>.pth, discriminator weights included; and a single-speaker model."""
    import torch
    from TTS.tts.models.vits import Vits

    run = tmp_path / "run"
    run.mkdir()
    (run / "my_speakers.json").write_text(json.dumps({"alice": 0, "bob": 1}))
    config = _tiny_config()
    config.model_args.speakers_file = str(run / "my_speakers.json")
    config.model_args.use_speaker_embedding = True
    config.model_args.num_speakers = 2
    model = Vits(config)
    folder = tmp_path / "exported"
    folder.mkdir()
    config.model_args.speakers_file = "/training/box/out/my_speakers.json"
    config.save_json(str(folder / "config.json"))
    shutil.copy(run / "my_speakers.json", folder / "my_speakers.json")
    torch.save(model.state_dict(), folder / "checkpoint_500.pth")
    torch.save(model.state_dict(), folder / "checkpoint_90.pth")
    engine = load_engine(CoquiConfig(str(folder), device="cpu"))
    assert [(v.id, v.params["speaker_index"]) for v in engine.voices()] == [
        ("exported-alice", 0),
        ("exported-bob", 1),
    ]
    (audio,) = engine.synthesize([SynthesisRequest("hello world", engine.voices()[1])])
    assert audio.samples.size > 0

    single = tmp_path / "single"
    single.mkdir()
    config = _tiny_config()
    model = Vits(config)
    config.save_json(str(single / "config.json"))
    torch.save({"model": model.state_dict()}, single / "best_model.pth")
    engine = load_engine(CoquiConfig(str(single), device="cpu"))
    assert [v.id for v in engine.voices()] == ["single-default"]
    assert engine.synthesize([SynthesisRequest("one voice", engine.voices()[0])])[0].samples.size > 0


@pytest.mark.slow
def test_older_and_d_vector_models_load(tmp_path):
    """A speaker table saved without any speakers file (older coqui) gets `speaker<i>` voices; a
    d-vector VITS (`use_d_vector_file`, its file moved beside the model) gets one voice per name,
    synthesized from the mean d-vector, batched equal to alone; a speakers file naming fewer
    speakers than the table is refused, naming the mismatch."""
    import torch
    from TTS.tts.models.vits import Vits

    old = tmp_path / "old"
    old.mkdir()
    config = _tiny_config()
    config.model_args.use_speaker_embedding = True
    config.speakers = ["a", "b", "c"]
    model = Vits(config)
    config.speakers = []
    config.save_json(str(old / "config.json"))
    torch.save({"model": model.state_dict()}, old / "model.pth")
    engine = load_engine(CoquiConfig(str(old), device="cpu"))
    assert [v.speaker for v in engine.voices()] == ["speaker0", "speaker1", "speaker2"]
    (old / "speaker_ids.json").write_text(json.dumps({"a": 0, "b": 1}))
    with pytest.raises(SynthError, match="emb_g"):
        load_engine(CoquiConfig(str(old), device="cpu"))

    dvec = tmp_path / "dvec"
    dvec.mkdir()
    rng = np.random.default_rng(3)
    clips = {
        f"clip{i}.wav": {"name": ["nora", "omar", "pia"][i % 3], "embedding": rng.normal(size=32).tolist()}
        for i in range(9)
    }
    (dvec / "speakers.json").write_text(json.dumps(clips))
    config = _tiny_config()
    config.model_args.use_d_vector_file = True
    config.model_args.d_vector_dim = 32
    config.model_args.d_vector_file = [str(dvec / "speakers.json")]
    model = Vits(config)
    config.model_args.d_vector_file = ["/training/box/speakers.json"]
    config.save_json(str(dvec / "config.json"))
    torch.save({"model": model.state_dict()}, dvec / "best_model.pth")
    engine = load_engine(CoquiConfig(str(dvec), device="cpu", noise_scale=0.0, noise_w_scale=0.0))
    voices = engine.voices()
    assert [v.speaker for v in voices] == ["nora", "omar", "pia"]
    reqs = [
        SynthesisRequest(t, v)
        for t, v in zip(["one two three.", "a much longer sentence than that.", "ok"], voices)
    ]
    batched = engine.synthesize(reqs)
    for req, got in zip(reqs, batched):
        (alone,) = engine.synthesize([req])
        assert len(got.samples) == len(alone.samples) > 0
        np.testing.assert_allclose(got.samples, alone.samples, atol=1e-5)
    seen = []
    engine.net.waveform_decoder.cond_layer.register_forward_hook(lambda _m, a, _o: seen.append(a[0][0, :, 0]))
    for voice in voices:
        engine.synthesize([SynthesisRequest("the same words", voice)])
        mean = np.mean([c["embedding"] for c in clips.values() if c["name"] == voice.speaker], axis=0)
        np.testing.assert_allclose(seen[-1].numpy(), mean / np.linalg.norm(mean), atol=1e-6)
    (dvec / "speakers.json").unlink()
    with pytest.raises(SynthError, match="d_vector_file"):
        load_engine(CoquiConfig(str(dvec), device="cpu"))


def test_word_timings_from_the_duration_predictor(coqui):
    """Every word of the text, in order, inside the audio, from the model's own durations (a
    random model: the spans are meaningless as speech but must follow its durations), and the
    same in a batch as alone."""
    texts = ["Hello there, how are you?", "A much longer sentence, with commas; and more words in it."]
    voices = coqui.voices()
    batch = coqui.synthesize([SynthesisRequest(t, voices[i]) for i, t in enumerate(texts)])
    for text, audio in zip(texts, batch):
        duration = audio.samples.shape[0] / audio.sample_rate
        assert [w.word for w in audio.words] == text.split()
        assert all(0 <= w.start <= w.end <= duration + 1e-6 for w in audio.words)
        assert all(a.start <= b.start for a, b in zip(audio.words, audio.words[1:]))
    (alone,) = coqui.synthesize([SynthesisRequest(texts[0], voices[0])])
    assert alone.words == batch[0].words
