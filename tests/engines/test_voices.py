"""Voices from several places: Piper voices by name through the model cache (a local voice
repository the test builds, no network), several models in one catalog, engines recognized from
what they are given."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from synth.engines import CoquiConfig, PiperConfig, SynthesisRequest, engine_configs, engine_of, load_engine
from synth.engines.piper_voices import fetch_voice
from synth.errors import ConfigError
from synth.testing import build_random_vits
from tests.helpers import build_piper_trio, run_cli, write_jsonl

NAME = "en_US-trio-medium"


@pytest.fixture(scope="module")
def voice_repo(tmp_path_factory) -> Path:
    """Piper's repository layout: <lang>/<lang>_<REGION>/<name>/<quality>/<voice>.onnx[.json]."""
    root = tmp_path_factory.mktemp("piper-voices")
    build_piper_trio(root / "en" / "en_US" / "trio" / "medium", NAME)
    return root


@pytest.fixture(scope="module")
def coqui_model(tmp_path_factory) -> Path:
    return build_random_vits(tmp_path_factory.mktemp("vits") / "tiny_vctk", ["p225", "p226", "p227"])


def synth_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_a_piper_voice_by_name_is_fetched_once_then_used_offline(voice_repo, tmp_path):
    cache = tmp_path / "cache"
    online = {"SYNTH_PIPER_VOICES_URL": voice_repo.as_uri()}
    res = synth_cli("voices", "--model", NAME, "--model-cache", str(cache), env=online)
    assert res.returncode == 0, res.stderr
    assert [line.split()[0] for line in res.stdout.splitlines()] == ["trio-ann", "trio-bob", "trio-cyd"]
    assert sorted(p.name for p in (cache / "piper").iterdir()) == [f"{NAME}.onnx", f"{NAME}.onnx.json"]
    # offline: the repository is gone, the cache serves (also through the environment variable)
    offline = {"SYNTH_PIPER_VOICES_URL": (tmp_path / "nowhere").as_uri(), "SYNTH_MODEL_CACHE": str(cache)}
    res = synth_cli("voices", "--model", NAME, env=offline)
    assert res.returncode == 0, res.stderr
    # neither cache nor repository: the error names the cache and the command that fills it
    res = synth_cli("voices", "--model", "en_US-other-low", "--model-cache", str(cache), env=offline)
    assert res.returncode == 1
    assert (
        str(cache / "piper") in res.stderr
        and "synth voices --model en_US-other-low --model-cache" in res.stderr
    )


def test_an_interrupted_download_leaves_no_half_file(voice_repo, tmp_path):
    (voice_repo / "en/en_US/trio/medium/broken").mkdir(exist_ok=True)
    with pytest.raises(ConfigError, match="could not be downloaded"):
        fetch_voice("en_US-missing-medium", tmp_path, voice_repo.as_uri())
    assert not any(p.name.endswith(".part") for p in (tmp_path / "piper").iterdir())


def test_engines_are_recognized_from_their_models(coqui_model, tmp_path):
    assert engine_of(None) == engine_of("x.onnx") == engine_of(NAME) == "piper"
    assert engine_of("tts_models/en/vctk/vits") == engine_of(str(coqui_model)) == "coqui"
    assert engine_of("some-name") is None
    configs = engine_configs(None, [NAME, str(coqui_model)], device="cpu")
    assert [type(c) for c in configs] == [PiperConfig, CoquiConfig]
    with pytest.raises(ConfigError, match="--engine"):
        engine_configs(None, ["some-name"])
    assert isinstance(engine_configs("coqui", ["some-name"])[0], CoquiConfig)  # told: obeyed


@pytest.mark.slow
def test_several_models_in_one_catalog(voice_repo, coqui_model, tmp_path):
    cache = tmp_path / "cache"
    fetch_voice(NAME, cache, voice_repo.as_uri())
    engine = load_engine(
        (PiperConfig(NAME, model_cache=str(cache)), CoquiConfig(str(coqui_model), device="cpu"))
    )
    ids = [v.id for v in engine.voices()]
    assert ids[:3] == ["trio-ann", "trio-bob", "trio-cyd"] and len(ids) == 6
    piper, coqui = engine.voices()[0], engine.voices()[3]
    assert engine.voice_distance(piper, coqui) == 1.0
    audios = engine.synthesize(
        [
            SynthesisRequest("First.", coqui),
            SynthesisRequest("Second one.", piper),
            SynthesisRequest("Third.", coqui),
        ]
    )
    assert [a.sample_rate for a in audios] == [
        coqui.params and audios[0].sample_rate,
        22050,
        audios[0].sample_rate,
    ]
    assert [w.word for w in audios[1].words] == ["Second", "one."]

    dialogs = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"conversation_id": f"m{i}", "turns": ["Hello there.", "Hi, how are you?", "Fine."]}
            for i in range(12)
        ],
    )
    out = tmp_path / "ds"
    res = synth_cli(
        "generate", "--dialogs", str(dialogs), "--out", str(out), "--quiet", "--device", "cpu",
        "--model", NAME, "--model", str(coqui_model), "--model-cache", str(cache),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    engines_used = set()
    for folder in (out / "conversations").iterdir():
        meta = json.loads((folder / "metadata.json").read_text())
        assert meta["engine"]["engine"] == "multi"
        for v in meta["voices"].values():
            engines_used.add(v["engine"])
            assert v["model"] in (f"{NAME}.onnx", coqui_model.name)
    assert engines_used == {"piper", "coqui"}  # casting spread over both models


@pytest.mark.slow
def test_measured_casting_keeps_sound_alike_voices_apart(voice_repo, tmp_path):
    """The trio model's three speakers sound the same (its speaker input changes nothing): to the
    model they are three people, to the speaker encoder one voice. Cast by measurement, no
    conversation gets two of them, and every conversation's speakers are apart by the encoder."""
    import numpy as np

    from synth.voices.encoder import cosine_distance

    cache = tmp_path / "cache"
    fetch_voice(NAME, cache, voice_repo.as_uri())
    quiet = ["--noise-scale", "0", "--noise-w", "0", "--model-cache", str(cache)]
    models = ["--model", NAME, "--model", str(embedded_piper())]
    res = synth_cli("voices", "--measure", "--json", *models, *quiet)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    nearest = {r["id"]: r for r in report["voices"]}
    assert (
        nearest["trio-ann"]["nearest"] in ("trio-bob", "trio-cyd") and nearest["trio-ann"]["distance"] < 0.05
    )
    assert report["summary"]["voices"] == 21
    saved = list((cache / "embeddings").glob("*.json"))
    assert len(saved) == 1  # measured once, kept as JSON in the model cache

    dialogs = write_jsonl(
        tmp_path / "d.jsonl",
        [{"conversation_id": f"c{i}", "turns": ["Hello.", "Hi.", "Bye."], "meta": {}} for i in range(30)],
    )
    out = tmp_path / "ds"
    res = synth_cli("generate", "--dialogs", str(dialogs), "--out", str(out), "--quiet", "--cast-by", "measured",
                    *models, *quiet)  # fmt: skip
    assert res.returncode == 0, res.stderr
    embeddings = {k: np.asarray(v) for k, v in json.loads(saved[0].read_text())["voices"].items()}
    for folder in (out / "conversations").iterdir():
        cast = [v["id"] for v in json.loads((folder / "metadata.json").read_text())["voices"].values()]
        assert sum(c.startswith("trio-") for c in cast) <= 1
        assert cosine_distance(embeddings[cast[0]], embeddings[cast[1]]) >= 0.3
    res = synth_cli("validate", str(out), "--stats")
    assert res.returncode == 0 and "distinct speakers (voices)" in res.stdout


@pytest.mark.slow
def test_casting_by_attributes(tmp_path):
    info = {
        "p225": {"age": "23", "gender": "F", "accent": "English", "region": "Southern England"},
        "p226": {"age": "22", "gender": "M", "accent": "English", "region": "Surrey"},
        "p227": {"age": "38", "gender": "M", "accent": "Scottish", "region": "Edinburgh"},
        "p228": {"age": "22", "gender": "F", "accent": "Scottish", "region": "Glasgow"},
    }
    model = build_random_vits(tmp_path / "vctk", list(info), speaker_info=info)
    dialogs = write_jsonl(
        tmp_path / "d.jsonl",
        [{"conversation_id": f"a{i}", "turns": ["One.", "Two."]} for i in range(8)]
        + [
            {
                "conversation_id": "own",
                "turns": ["One.", "Two."],
                "voices": {"B": "gender:female,accent:Scottish"},
            }
        ],
    )
    out = tmp_path / "ds"
    res = synth_cli("generate", "--dialogs", str(dialogs), "--out", str(out), "--quiet", "--engine", "coqui",
                    "--model", str(model), "--device", "cpu", "--voice", "A=gender:male")  # fmt: skip
    assert res.returncode == 0, res.stderr
    for folder in (out / "conversations").iterdir():
        voices = json.loads((folder / "metadata.json").read_text())["voices"]
        assert voices["A"]["meta"]["gender"] == "male"
        if folder.name == "own":
            assert voices["B"]["speaker"] == "p228"
    res = synth_cli("generate", "--dialogs", str(dialogs), "--out", str(tmp_path / "x"), "--quiet", "--engine",
                    "coqui", "--model", str(model), "--device", "cpu", "--voice", "A=accent:Welsh")  # fmt: skip
    # no voice of the catalog has it: refused up front, like an unknown voice id (a bad --voice value)
    assert res.returncode == 2 and "A=accent:Welsh" in res.stderr and "no voice of the catalog" in res.stderr


def embedded_piper() -> Path:
    from synth.engines.piper import embedded_model_path

    return embedded_model_path()


@pytest.mark.slow
def test_blended_voices_mix_speaker_embeddings(coqui_model, tmp_path):
    """A blend is a new row of the speaker table: all weight on one parent speaks exactly as that
    parent; an even mix speaks unlike either. `synth voices --blend` judges candidates with the
    speaker encoder and the ASR and writes the kept ones with their recipes (a random model is
    unintelligible, so the thresholds are opened here: the judging runs, the verdicts are not
    the point), and `--blends` brings them into the catalog."""
    import numpy as np

    from synth.engines.blends import Blend, write_blends

    recipes = tmp_path / "mine.json"
    write_blends(
        recipes,
        "tiny",
        [Blend("tiny-mix-solo", (("p226", 1.0),)), Blend("tiny-mix-even", (("p225", 0.5), ("p227", 0.5)))],
    )
    engine = load_engine(
        CoquiConfig(str(coqui_model), device="cpu", noise_scale=0.0, noise_w_scale=0.0, blends=str(recipes))
    )
    by_id = {v.id: v for v in engine.voices()}
    assert by_id["tiny-mix-even"].meta["blend"] == [["p225", 0.5], ["p227", 0.5]]
    parents = {s: next(v for v in engine.voices() if v.speaker == s) for s in ("p225", "p226", "p227")}
    text = "the weather is lovely today."
    say = {
        k: engine.synthesize([SynthesisRequest(text, v)])[0].samples for k, v in {**parents, **by_id}.items()
    }
    np.testing.assert_allclose(say["tiny-mix-solo"], say["p226"], atol=1e-5)
    even = say["tiny-mix-even"]
    for parent in ("p225", "p227"):
        n = min(len(even), len(say[parent]))
        assert len(even) != len(say[parent]) or np.abs(even[:n] - say[parent][:n]).max() > 1e-3

    out = tmp_path / "blends.json"
    res = synth_cli("voices", "--engine", "coqui", "--model", str(coqui_model), "--device", "cpu", "--blend", "2",
                    "--model-cache", str(tmp_path / "cache"), "--blend-out", str(out), "--min-distance", "0", "--max-wer", "100")  # fmt: skip
    assert res.returncode == 0, res.stderr
    kept = json.loads(out.read_text())["blends"]
    assert len(kept) == 2 and all({"nearest", "distance", "wer"} <= set(b["report"]) for b in kept)
    assert all(abs(sum(w for _, w in b["parents"]) - 1) < 1e-6 for b in kept)
    res = synth_cli(
        "voices", "--engine", "coqui", "--model", str(coqui_model), "--device", "cpu", "--blends", str(out)
    )
    assert res.returncode == 0 and all(b["id"] in res.stdout for b in kept)
    # judged strictly, an unintelligible random model's blends are all refused
    res = synth_cli("voices", "--engine", "coqui", "--model", str(coqui_model), "--device", "cpu", "--blend", "1",
                    "--model-cache", str(tmp_path / "cache"), "--blend-out", str(tmp_path / "strict.json"))  # fmt: skip
    assert res.returncode == 0 and json.loads((tmp_path / "strict.json").read_text())["blends"] == []


def test_piper_speaker_table_gives_attributes(tmp_path):
    """LibriTTS-R's SPEAKERS.txt layout for a multi-speaker Piper model: gender by speaker name."""
    model = build_piper_trio(tmp_path / "m")
    table = tmp_path / "SPEAKERS.txt"
    table.write_text(
        ";ID  |SEX| SUBSET           |MINUTES| NAME\nann  | F | train-clean-100  | 25.1 | Ann A\n"
        "bob  | M | train-clean-360  | 24.9 | Bob B\ncyd  | F | train-other-500  | 30.0 | Cyd C\n"
    )
    engine = load_engine(PiperConfig(str(model), speaker_info=str(table)))
    assert {v.id: v.meta["gender"] for v in engine.voices()} == {
        "trio-ann": "female",
        "trio-bob": "male",
        "trio-cyd": "female",
    }
    dialogs = write_jsonl(
        tmp_path / "d.jsonl", [{"conversation_id": f"g{i}", "turns": ["Hi.", "Hello."]} for i in range(4)]
    )
    res = synth_cli("generate", "--dialogs", str(dialogs), "--out", str(tmp_path / "ds"), "--quiet", "--model",
                    str(model), "--speaker-info", str(table), "--voice", "B=gender:male")  # fmt: skip
    assert res.returncode == 0, res.stderr
    for folder in (tmp_path / "ds" / "conversations").iterdir():
        assert json.loads((folder / "metadata.json").read_text())["voices"]["B"]["id"] == "trio-bob"


@pytest.mark.slow
def test_piper_blends_through_a_patched_speaker_lookup(tmp_path):
    """A Piper model whose speakers differ through a table lookup on sid (here a gain per speaker,
    0.5 / 1.0 / 1.5): the patched graph's weighted sum makes all weight on one speaker speak as
    that speaker, and an even mix of the 0.5 and 1.5 speakers speak as the 1.0 one (the mix is
    the rows' weighted sum). Word timings still come through the patched graph."""
    import numpy as np

    from synth.engines.blends import Blend, write_blends

    model = build_piper_trio(tmp_path / "m", gains=(0.5, 1.0, 1.5))
    recipes = tmp_path / "b.json"
    write_blends(
        recipes,
        "trio",
        [Blend("trio-mix-solo", (("cyd", 1.0),)), Blend("trio-mix-even", (("ann", 0.5), ("cyd", 0.5)))],
    )
    quiet = {"noise_scale": 0.0, "noise_w_scale": 0.0}
    plain = load_engine(PiperConfig(str(model), **quiet))
    blended = load_engine(PiperConfig(str(model), blends=str(recipes), **quiet))
    text = "Blending voices, one row at a time."

    def say(engine, voice_id):
        voice = {v.id: v for v in engine.voices()}[voice_id]
        return engine.synthesize([SynthesisRequest(text, voice)])[0]

    bob, cyd = say(plain, "trio-bob"), say(plain, "trio-cyd")
    np.testing.assert_allclose(say(blended, "trio-cyd").samples, cyd.samples, atol=1e-5)  # catalog unchanged
    np.testing.assert_allclose(say(blended, "trio-mix-solo").samples, cyd.samples, atol=1e-5)
    even = say(blended, "trio-mix-even")
    np.testing.assert_allclose(even.samples, bob.samples, atol=1e-5)
    assert [w.word for w in even.words] == text.split()
    assert {v.id for v in blended.voices()} >= {"trio-mix-solo", "trio-mix-even"}
    with pytest.raises(ConfigError, match="no speaker embedding lookup"):
        load_engine(PiperConfig(str(build_piper_trio(tmp_path / "flat")), blends=str(recipes)))
