"""conversation.wav: every turn and event on its speaker's channel at its start time, exactly
(checked here independently of the mixer), folding of three or more speakers, the main speaker,
augmentation of the other side, and `synth validate` noticing a file that does not match."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from synth import validate_dataset
from synth.dataset.augment import AugmentConfig, ChannelAugmenter, room_impulse_response
from synth.dataset.mixdown import channel_layout
from synth.errors import ConfigError
from tests.helpers import DUPLEX_DIALOGS, run_cli, write_jsonl


def share_above_8k(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64))) ** 2
    return float(spectrum[np.fft.rfftfreq(audio.shape[0], 1 / rate) > 8000].sum() / spectrum.sum())


def expected_mix(folder: Path, meta: dict) -> np.ndarray:
    channel = {s: i for i, members in enumerate(meta["channels"]) for s in members}
    items = [(t["start_time"], t) for t in meta["turns"]] + [(e["start"], e) for e in meta.get("events", [])]
    parts = []
    for start, item in items:
        audio, _ = sf.read(str(folder / item["audio_file"]), dtype="int16")
        parts.append((round(start * 16000), channel[item["speaker"]], audio))
    out = np.zeros((max(s + len(a) for s, _, a in parts), 2), dtype=np.int32)
    for s, ch, a in parts:
        out[s : s + len(a), ch] += a
    return out


@pytest.fixture(scope="module")
def duplex(tmp_path_factory) -> Path:
    """The full-duplex dataset with a 16 kHz conversation.wav: the turn WAVs copied exactly."""
    tmp = tmp_path_factory.mktemp("duplex16")
    out = tmp / "ds"
    res = run_cli(
        "generate", "--dialogs", str(write_jsonl(tmp / "d.jsonl", DUPLEX_DIALOGS)), "--out", str(out), "--quiet",
        "--gap", "conversational", "--backchannels", "1.0", "--conversation-audio", "--conversation-rate", "16000",
        "--main-speaker", "assistant", "--seed", "3", "--noise-scale", "0", "--noise-w", "0",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return out


def test_full_band_conversation_audio_is_made_from_the_engine_audio(duplex_dataset, quiet_engine):
    """The default conversation.wav is 24 kHz, resampled once from the engine's own audio: it
    carries what the engine makes above 8 kHz (16 kHz turns cannot), and brought down to 16 kHz
    it holds the same turns where metadata puts them (validate checks that)."""
    from synth.engines.base import SynthesisRequest

    report = validate_dataset(duplex_dataset)
    assert report.ok, report.format()
    folder = duplex_dataset / "conversations" / "duo"
    meta = json.loads((folder / "metadata.json").read_text())
    got, rate = sf.read(str(folder / "conversation.wav"), dtype="float32")
    assert rate == meta["conversation_audio_rate"] == 24000
    assert not (folder / "fullband").exists()  # the staged full-band turns are not kept
    main = meta["main_speaker"]
    by_id = {v.id: v for v in quiet_engine.voices()}
    voice = by_id[meta["voices"][main]["id"]]
    text = next(t["text"] for t in meta["turns"] if t["speaker"] == main)
    own = quiet_engine.synthesize([SynthesisRequest(text, voice)])[0]
    engine_share = share_above_8k(own.samples, int(own.sample_rate))
    mix_share = share_above_8k(got[:, 0], rate)
    turn_share = share_above_8k(sf.read(str(folder / "turn_1.wav"), dtype="float32")[0], 16000)
    assert turn_share < 1e-9  # 16 kHz: nothing above 8 kHz
    if engine_share > 1e-4:  # the voice has content up there (the higher voices do)
        assert mix_share > 0.3 * engine_share, (mix_share, engine_share)


def test_channels_hold_exactly_the_turns_and_events(duplex):
    report = validate_dataset(duplex)
    assert report.ok, report.format()
    for cid in ("duo", "trio"):
        folder = duplex / "conversations" / cid
        meta = json.loads((folder / "metadata.json").read_text())
        got, rate = sf.read(str(folder / "conversation.wav"), dtype="int16")
        assert rate == 16000 and got.shape[1] == 2
        want = expected_mix(folder, meta)
        assert got.shape[0] == want.shape[0]
        np.testing.assert_array_equal(got, np.clip(want, -32768, 32767))
        assert meta["conversation_audio"] == "conversation.wav"
        assert abs(meta["total_duration_sec"] - max(t["end_time"] for t in meta["turns"])) < 1e-3


def test_main_speaker_and_folding(duplex):
    duo = json.loads((duplex / "conversations" / "duo" / "metadata.json").read_text())
    assert duo["main_speaker"] == "assistant" and duo["channels"] == [["assistant"], ["user"]]
    trio = json.loads((duplex / "conversations" / "trio" / "metadata.json").read_text())
    assert trio["main_speaker"] == "A" and trio["channels"] == [["A"], ["B", "C"]]  # no assistant: first
    assert channel_layout(["x", "y", "z"], "y") == ("y", [["y"], ["x", "z"]])


def test_backchannels_are_events_not_turns(duplex):
    meta = json.loads((duplex / "conversations" / "duo" / "metadata.json").read_text())
    assert meta["total_turns"] == 4 and len(meta["events"]) >= 1
    samples = (duplex / "conversations" / "duo" / "samples.jsonl").read_text().splitlines()
    assert len(samples) == 4
    assistant = [t for t in meta["turns"] if t["speaker"] == "assistant"]
    for e in meta["events"]:
        assert e["kind"] == "backchannel" and e["speaker"] == "user"
        assert any(t["start_time"] < e["start"] < e["end"] < t["end_time"] for t in assistant)


def test_validate_names_a_conversation_audio_that_does_not_match(duplex, tmp_path):
    import shutil

    copy = tmp_path / "ds"
    shutil.copytree(duplex, copy)
    path = copy / "conversations" / "duo" / "conversation.wav"
    audio, rate = sf.read(str(path), dtype="int16")
    meta = json.loads((copy / "conversations" / "duo" / "metadata.json").read_text())
    at = round(meta["turns"][2]["start_time"] * 16000) + 2000
    audio[at, 1] = audio[at, 1] // 2 + 1000
    sf.write(str(path), audio, rate, subtype="PCM_16")
    report = validate_dataset(copy)
    assert any("conversation.wav: channel 1 differs" in e for e in report.errors), report.format()


def test_validate_names_a_full_band_conversation_audio_that_does_not_match(duplex_dataset, tmp_path):
    import shutil

    copy = tmp_path / "ds"
    shutil.copytree(duplex_dataset, copy)
    path = copy / "conversations" / "duo" / "conversation.wav"
    audio, rate = sf.read(str(path), dtype="float32")
    meta = json.loads((copy / "conversations" / "duo" / "metadata.json").read_text())
    turn = meta["turns"][1]
    lo, hi = round(turn["start_time"] * rate), round(turn["end_time"] * rate)
    audio[lo:hi, 0] = audio[lo:hi, 0][::-1]  # the turn played backwards: same energy, wrong speech
    sf.write(str(path), audio, rate, subtype="PCM_16")
    report = validate_dataset(copy)
    assert any("conversation.wav: channel 0 does not hold" in e for e in report.errors), report.format()


@pytest.mark.slow
def test_augmented_side_is_seeded_recorded_and_leaves_the_main_side_clean(tmp_path):
    out = tmp_path / "ds"
    args = ["--conversation-audio", "--conversation-rate", "16000", "--augment", "--augment-reverb", "1",
            "--augment-snr", "15,15"]  # fmt: skip
    res = run_cli("generate", "--dialogs", str(write_jsonl(tmp_path / "d.jsonl", DUPLEX_DIALOGS[:1])), "--out",
                  str(out), "--quiet", "--noise-scale", "0", "--noise-w", "0", *args)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert validate_dataset(out).ok
    folder = out / "conversations" / "duo"
    meta = json.loads((folder / "metadata.json").read_text())
    recipe = meta["augmentation"]
    assert recipe["channel"] == 1 and recipe["snr_db"] == 15.0 and recipe["rt60_sec"] > 0
    got, _ = sf.read(str(folder / "conversation.wav"), dtype="int16")
    want = expected_mix(folder, meta)
    np.testing.assert_array_equal(got[: want.shape[0], 0], want[:, 0])  # the main side: untouched
    assert got.shape[0] > want.shape[0]  # the reverb tail
    # channel 1 has noise where nobody speaks, about 15 dB under the speech
    silent = want[:, 1] == 0
    noise_db = 10 * np.log10(np.mean(got[: want.shape[0], 1][silent].astype(float) ** 2))
    speech_db = 10 * np.log10(np.mean(got[: want.shape[0], 1][~silent].astype(float) ** 2))
    assert 8 < speech_db - noise_db < 25
    # the same seed gives the same file
    again = tmp_path / "again"
    res = run_cli("generate", "--dialogs", str(tmp_path / "d.jsonl"), "--out", str(again), "--quiet",
                  "--noise-scale", "0", "--noise-w", "0", *args)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert (again / "conversations/duo/conversation.wav").read_bytes() == (
        folder / "conversation.wav"
    ).read_bytes()


def test_augmentation_pieces():
    rng = np.random.default_rng(0)
    rir = room_impulse_response(0.5, rng)
    assert rir.shape[0] == 8000 and abs(float(np.sum(rir**2)) - 1) < 1e-4 and np.argmax(np.abs(rir)) == 0
    # streaming reverb in blocks equals reverb in one go
    x = rng.standard_normal(20000)
    recipe = {"gain_db": 0.0, "rt60_sec": 0.3, "seed": 5}
    whole = ChannelAugmenter(recipe, -20.0)(x, 0)
    blocks = ChannelAugmenter(recipe, -20.0)
    parts = [blocks(x[i : i + 3000], i) for i in range(0, 20000, 3000)]
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-4)
    with pytest.raises(ConfigError, match="noise"):
        AugmentConfig(noise="/no/such/folder")
    with pytest.raises(ConfigError, match="snr_db"):
        AugmentConfig(snr_db=(30.0, 10.0))


def test_noise_from_a_folder_of_recordings(tmp_path):
    """A noise folder: one recording drawn per conversation, looped, scaled to the drawn SNR."""
    import random

    folder = tmp_path / "noise"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in ("hum.wav", "cafe.flac"):
        sf.write(str(folder / name), (0.1 * rng.standard_normal(8000)).astype(np.float32), 16000)
    (folder / "notes.txt").write_text("not audio")
    config = AugmentConfig(noise=str(folder), snr_db=(20.0, 20.0), reverb=0.0, gain_db=(0.0, 0.0))
    recipe = config.draw(random.Random(3))
    assert Path(recipe["noise"]).name in {"hum.wav", "cafe.flac"} and recipe["rt60_sec"] is None
    silent = np.zeros(40000)
    out = ChannelAugmenter(recipe, -20.0)(silent, 0)  # 2.5 s from a 0.5 s file: looped
    level = 10 * np.log10(np.mean(out**2))
    assert level == pytest.approx(-40.0, abs=0.5)  # speech at -20 dBFS, 20 dB above the noise
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no audio files"):  # refused before any conversation
        AugmentConfig(noise=str(tmp_path / "empty"))
    assert (
        AugmentConfig(noise=str(tmp_path / "empty"), snr_db=None).draw(random.Random(0))["gain_db"]
        is not None
    )
