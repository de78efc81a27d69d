"""Token counts that match the model: the llama-omni speech profile (300 positions a turn, no
turn over Whisper's 30 s window), long turns split at sentence boundaries or rejected, system
prompt presets, and validate refusing a llama-omni dataset with a turn the model would cut."""

from __future__ import annotations

import json

import pytest

from synth.errors import ConfigError
from synth.samples.builder import LLAMA_OMNI_SYSTEM_PROMPT, SampleConfig, SpeechProfile
from synth.workflows.validate import validate_dataset
from tests.helpers import run_cli, write_jsonl

SENTENCES = [f"Here is sentence number {i}, which tells a little more of the long story." for i in range(24)]


def test_profiles_parse_and_count():
    assert SpeechProfile.parse("rate:10").positions(2.31) == 24
    assert SpeechProfile.parse("rate:12.5").spec() == "rate:12.5"
    omni = SpeechProfile.parse("llama-omni")
    assert omni.positions(2.0) == omni.positions(29.9) == 300 and omni.max_turn_sec == 30.0
    for bad in ("rate:0", "rate:x", "whisper", ""):
        with pytest.raises(ConfigError, match="speech_profile"):
            SpeechProfile.parse(bad)
    assert SampleConfig(system_prompt="llama-omni").system_prompt == LLAMA_OMNI_SYSTEM_PROMPT
    assert SampleConfig(system_prompt="Be brief.").system_prompt == "Be brief."


@pytest.fixture(scope="module")
def long_dialogs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("long")
    return write_jsonl(
        folder / "long.jsonl",
        [
            {
                "conversation_id": "story",
                "turns": [
                    {"speaker": "A", "text": "Tell me the whole story, please."},
                    {"speaker": "B", "text": " ".join(SENTENCES)},
                    {"speaker": "A", "text": "What a story."},
                ],
            }
        ],
    )


@pytest.fixture(scope="module")
def omni_dataset(long_dialogs, tmp_path_factory):
    out = tmp_path_factory.mktemp("omni") / "ds"
    res = run_cli(
        "generate",
        "--dialogs",
        str(long_dialogs),
        "--out",
        str(out),
        "--quiet",
        "--speech-profile",
        "llama-omni",
        "--system-prompt",
        "llama-omni",
    )
    assert res.returncode == 0, res.stderr
    return out


@pytest.mark.slow
def test_llama_omni_profile_splits_long_turns_and_counts_300_per_turn(long_dialogs, omni_dataset, tmp_path):
    out = omni_dataset
    meta = json.loads((out / "conversations" / "story" / "metadata.json").read_text())
    turns = meta["turns"]
    assert len(turns) > 3  # the long turn became several
    assert all(t["duration_sec"] <= 30.0 for t in turns)
    parts = [t for t in turns if t["speaker"] == "B"]
    assert " ".join(t["text"] for t in parts) == " ".join(SENTENCES)  # whole sentences, in order
    assert [t["turn_id"] for t in turns] == list(range(len(turns)))
    tokens = meta["tokens"]
    assert tokens["speech_profile"] == "llama-omni" and tokens["system_prompt"] == LLAMA_OMNI_SYSTEM_PROMPT
    assert tokens["speech_tokens"] == 300 * len(turns)
    samples = [
        json.loads(x) for x in (out / "conversations" / "story" / "samples.jsonl").read_text().splitlines()
    ]
    assert [s["speech_tokens"] for s in samples] == [300] * len(turns)
    assert tokens["total_tokens"] == tokens["text_tokens"] + 300 * len(turns)
    assert validate_dataset(out).ok

    rejected = run_cli(
        "generate",
        "--dialogs",
        str(long_dialogs),
        "--out",
        str(tmp_path / "r"),
        "--quiet",
        "--speech-profile",
        "llama-omni",
        "--long-turns",
        "reject",
    )
    assert rejected.returncode == 3
    assert "turns[1].text: the turn lasts" in rejected.stderr and "longer than 30 s" in rejected.stderr


@pytest.mark.slow
def test_tokenize_refuses_a_profile_whose_window_a_turn_exceeds(long_dialogs, tmp_path):
    """A rate:N dataset with a 35 s turn cannot become a llama-omni one by retokenizing (the model
    would cut the turn): `synth tokenize` refuses before writing anything, naming the turn, and
    the dataset is left as it was (it validates)."""
    out = tmp_path / "ds"
    made = run_cli(
        "generate",
        "--dialogs",
        str(long_dialogs),
        "--out",
        str(out),
        "--quiet",
        "--speech-profile",
        "rate:10",
    )
    assert made.returncode == 0, made.stderr
    assert validate_dataset(out).ok  # rate:10 has no window
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    res = run_cli("tokenize", str(out), "--speech-profile", "llama-omni")
    assert (
        res.returncode == 1
        and "turn 1 lasts" in res.stderr
        and "longer than the speech profile's 30 s" in res.stderr
    )
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert validate_dataset(out).ok


@pytest.mark.slow
def test_the_default_splits_a_turn_llama_omni_would_cut(long_dialogs, tmp_path):
    out = tmp_path / "ds"
    assert run_cli("generate", "--dialogs", str(long_dialogs), "--out", str(out), "--quiet").returncode == 0
    meta = json.loads(next((out / "conversations").glob("*/metadata.json")).read_text())
    assert meta["tokens"]["speech_profile"] == "llama-omni"
    assert all(t["duration_sec"] <= 30.0 for t in meta["turns"]) and meta["total_turns"] > 3
    assert validate_dataset(out).ok


@pytest.mark.slow
def test_llama_omni_reads_the_export_with_the_positions_synth_counted(omni_dataset, tmp_path):
    """LLaMA-Omni's loading path (omni_speech/infer/infer.py CustomDataset, input_type 'mel'):
    the export's `speech` file is loaded at 16 kHz, `whisper.pad_or_trim`-ed to 30 s and turned
    into a 128-bin log-mel by openai-whisper's own functions; Whisper's encoder (the real module,
    random weights) halves it to 1500 frames, and LLaMA-Omni's EncoderProjectorConcat (k = 5,
    `speech_encoder_ds_rate`) keeps seq_len // 5. That is synth's count, and no turn is trimmed.
    (LLaMA-Omni itself is not on the package registry; its loader was read from its source.)"""
    import soundfile as sf
    import torch
    import whisper
    from whisper.model import AudioEncoder

    out = omni_dataset
    export = tmp_path / "train.json"
    assert run_cli("export", str(out), str(export), "--to", "llama-omni").returncode == 0
    items = json.loads(export.read_text())
    encoder = AudioEncoder(n_mels=128, n_ctx=1500, n_state=64, n_head=1, n_layer=1).eval()
    samples = {}
    for line in (out / "conversations" / "story" / "samples.jsonl").read_text().splitlines():
        s = json.loads(line)
        samples[f"story_turn_{s['turn_number']}"] = s
    for item in items:
        assert item["conversations"][0]["value"].startswith("<speech>")
        speech, rate = sf.read(item["speech"], dtype="float32")  # what whisper.load_audio decodes
        assert rate == whisper.audio.SAMPLE_RATE and len(speech) <= whisper.audio.N_SAMPLES  # not trimmed
        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(speech)), n_mels=128)
        with torch.no_grad():
            frames = encoder(mel.unsqueeze(0)).shape[1]
        k = 5
        positions = (frames - frames % k) // k
        assert positions == 300 == samples[item["id"]]["speech_tokens"]
