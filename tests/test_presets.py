"""Presets per target model: `--for llama-omni` and `--for moshi` set what their trainers need,
options given explicitly win, and the Python API applies the same settings."""

from __future__ import annotations

import json

import pytest
import soundfile as sf

from synth import GenerateOptions
from synth.errors import ConfigError
from synth.presets import PRESETS, apply_preset
from synth.workflows.validate import validate_dataset
from tests.helpers import run_cli, varied_dialogs, write_jsonl


def test_apply_preset_sets_the_sections_and_keeps_an_explicit_session_size():
    from synth.dialogs.sessions import SessionConfig

    omni = apply_preset(GenerateOptions(), "llama-omni")
    assert omni.samples.speech_profile == "llama-omni" and omni.pipeline.long_turns == "split"
    assert omni.conversation_audio is None and omni.sessions is None
    moshi = apply_preset(GenerateOptions(), "moshi")
    assert moshi.conversation_audio.sample_rate == 24000 and moshi.pipeline.gap.spec() == "conversational"
    assert (moshi.sessions.windows, moshi.sessions.window_sec) == (2, 300.0)
    sized = apply_preset(GenerateOptions(sessions=SessionConfig(minutes=40)), "moshi")
    assert sized.sessions.minutes == 40 and sized.sessions.windows is None
    with pytest.raises(ConfigError):
        apply_preset(GenerateOptions(), "whisper")
    assert set(PRESETS) == {"llama-omni", "moshi"}


@pytest.mark.slow
def test_generate_for_moshi_makes_window_sessions_with_full_band_audio(moshi_windows_dataset, tmp_path):
    out = moshi_windows_dataset
    assert validate_dataset(out).ok
    first = json.loads(next(iter((out / "manifest.jsonl").open())))
    meta = json.loads((out / first["path"] / "metadata.json").read_text())
    assert meta["session"]["target"]["windows"] == 2 and meta["gap_distribution"] == "conversational"
    info = sf.info(str(out / first["path"] / "conversation.wav"))
    assert (info.samplerate, info.channels, info.frames) == (24000, 2, 2 * 20 * 24000)
    source = write_jsonl(tmp_path / "d.jsonl", varied_dialogs(3, seed=8))
    explicit = run_cli(
        "generate", "--dialogs", str(source), "--out", str(tmp_path / "ds2"), "--quiet", "--for", "moshi",
        "--gap", "fixed:0.3", "--session-minutes", "0.5", "--limit", "2",
    )  # fmt: skip
    assert explicit.returncode == 0, explicit.stderr
    meta2 = json.loads(next((tmp_path / "ds2" / "conversations").glob("*/metadata.json")).read_text())
    assert meta2["gap_distribution"] == "fixed:0.3" and meta2["session"]["target"]["kind"] == "seconds"
