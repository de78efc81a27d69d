"""Shared fixtures: the real embedded Piper engine (loaded once per test session) and datasets
made by the real `synth` command. Helpers that are not fixtures live in tests/helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import DUPLEX_DIALOGS, EXAMPLES, run_cli, varied_dialogs, write_jsonl


@pytest.fixture(scope="session", autouse=True)
def caches_in_tmp(tmp_path_factory):
    """Every cache a test run fills (synth's model cache and measured voice embeddings, Hugging
    Face's, XDG's) is a temporary folder of the session: no test writes outside its own folders."""
    base = tmp_path_factory.mktemp("caches")
    patch = pytest.MonkeyPatch()
    patch.setenv("SYNTH_MODEL_CACHE", str(base / "synth"))
    patch.setenv("HF_HOME", str(base / "huggingface"))
    patch.setenv("XDG_CACHE_HOME", str(base / "xdg"))
    yield base
    patch.undo()


@pytest.fixture(scope="session")
def engine():
    from synth.engines import load_engine

    return load_engine()


@pytest.fixture(scope="session")
def quiet_engine():
    """The embedded voice with VITS noise off: audio is a deterministic function of the text."""
    from synth.engines import PiperConfig, load_engine

    return load_engine(PiperConfig(noise_scale=0.0, noise_w_scale=0.0))


@pytest.fixture(scope="session")
def example_dataset(tmp_path_factory) -> Path:
    """The README's run command on the shipped examples."""
    out = tmp_path_factory.mktemp("example") / "dataset"
    res = run_cli("generate", "--dialogs", str(EXAMPLES), "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="session")
def duplex_dataset(tmp_path_factory) -> Path:
    """A full-duplex dataset: conversational gaps, backchannels at every opportunity, conversation
    audio with the assistant as main speaker, noise off (deterministic audio)."""
    tmp = tmp_path_factory.mktemp("duplex")
    out = tmp / "ds"
    res = run_cli(
        "generate", "--dialogs", str(write_jsonl(tmp / "d.jsonl", DUPLEX_DIALOGS)), "--out", str(out), "--quiet",
        "--gap", "conversational", "--backchannels", "1.0", "--conversation-audio",
        "--main-speaker", "assistant", "--seed", "3", "--noise-scale", "0", "--noise-w", "0",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="session")
def moshi_windows_dataset(tmp_path_factory) -> Path:
    """`--for moshi` sessions of 2 windows of 20 s from 8 varied dialogs, noise off: what a
    moshi-finetune fork with TTT layers trains on (the preset's and the moshi export's tests)."""
    tmp = tmp_path_factory.mktemp("moshi_windows")
    out = tmp / "ds"
    res = run_cli(
        "generate", "--dialogs", str(write_jsonl(tmp / "d.jsonl", varied_dialogs(8, seed=6))), "--out", str(out),
        "--quiet", "--for", "moshi", "--session-windows", "2", "--window-sec", "20",
        "--noise-scale", "0", "--noise-w", "0",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return out
