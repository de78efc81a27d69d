"""Damaged and hostile datasets: paths in a finished dataset are never followed out of it, damaged
conversations are reported, never passed on, and repaired; merge checks every input first; an
interrupted tokenize leaves the old dataset or the new one."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from synth.dataset.writer import DatasetWriter
from synth.workflows.validate import validate_dataset
from tests.helpers import SYNTH, listed, run_cli


@pytest.fixture()
def dataset(example_dataset, tmp_path) -> Path:
    """A copy of the README's example dataset, to damage."""
    copy = tmp_path / "ds"
    shutil.copytree(example_dataset, copy)
    return copy


def _cli(*args: str, timeout: float = 600):
    return run_cli(*args, timeout=timeout)


@pytest.mark.faults
def test_paths_in_a_finished_dataset_are_never_followed_out(dataset, tmp_path):
    """A turn's audio_file of ../../../x/secret.wav (a valid WAV outside the dataset) and a
    symlinked conversation folder: validate names them, exports and merge refuse them (the
    conversation is left out and reported), and recovery removes an unlisted link."""
    import soundfile as sf

    outside = tmp_path / "x"
    outside.mkdir()
    sf.write(str(outside / "secret.wav"), np.zeros(16000, dtype=np.int16), 16000, subtype="PCM_16")
    folder = dataset / "conversations" / "bakery_morning"
    meta = json.loads((folder / "metadata.json").read_text())
    meta["turns"][0]["audio_file"] = "../../../x/secret.wav"
    (folder / "metadata.json").write_text(json.dumps(meta))
    report = validate_dataset(dataset)
    assert any("'audio_file' is '../../../x/secret.wav'" in e for e in report.errors), report.format()
    export = _cli("export", str(dataset), str(tmp_path / "train.json"), "--to", "llama-omni")
    assert export.returncode == 1 and "must be a plain file name" in export.stderr, export.stderr
    merged = _cli("merge", str(tmp_path / "merged"), str(dataset))
    assert merged.returncode == 3 and "bakery_morning" in merged.stdout and "DAMAGED" in merged.stdout
    assert "bakery_morning" not in listed(tmp_path / "merged") and len(listed(tmp_path / "merged")) == 3
    assert not list((tmp_path / "merged").rglob("secret.wav"))
    # a link where a conversation folder would be
    (dataset / "conversations" / "intruder").symlink_to(outside, target_is_directory=True)
    assert any("intruder: a symbolic link" in e for e in validate_dataset(dataset).errors)
    writer = DatasetWriter(dataset)
    assert "intruder" in writer.recover().orphans_removed
    assert outside.is_dir() and (outside / "secret.wav").exists()  # the link went, not its target


@pytest.mark.faults
def test_damaged_conversations_are_reported_never_passed_on_and_repaired(dataset, tmp_path):
    """A WAV cut in half, another emptied: validate, merge and a resumed generate say which and
    what; merge leaves them out; --repair makes them again; every file stays checked."""
    from tests.helpers import EXAMPLES

    half = dataset / "conversations" / "team_standup" / "turn_1.wav"
    half.write_bytes(half.read_bytes()[: half.stat().st_size // 2])
    (dataset / "conversations" / "lost_umbrella" / "turn_0.wav").write_bytes(b"")
    report = validate_dataset(dataset)
    assert any("team_standup: damaged: turn_1.wav" in e for e in report.errors), report.format()
    assert any("lost_umbrella: damaged: turn_0.wav" in e for e in report.errors)
    merged = _cli("merge", str(tmp_path / "merged"), str(dataset))
    assert merged.returncode == 3 and "DAMAGED: 2" in merged.stdout, merged.stdout
    assert sorted(listed(tmp_path / "merged")) == ["bakery_morning", "dialogs_000003"]
    assert validate_dataset(tmp_path / "merged").ok
    resumed = _cli("generate", "--dialogs", str(EXAMPLES), "--out", str(dataset), "--quiet")
    assert resumed.returncode == 3 and "DAMAGED: 2" in resumed.stdout, resumed.stdout
    repaired = _cli("generate", "--dialogs", str(EXAMPLES), "--out", str(dataset), "--quiet", "--repair")
    assert repaired.returncode == 0 and "made again 2 damaged" in repaired.stdout, repaired.stdout
    assert validate_dataset(dataset).ok and sorted(listed(dataset)) == sorted(
        listed(tmp_path / "merged") + ["lost_umbrella", "team_standup"]
    )


@pytest.mark.faults
def test_merge_checks_every_input_before_writing(dataset, tmp_path):
    out = tmp_path / "merged"
    res = _cli("merge", str(out), str(dataset), str(tmp_path / "nonexistent"))
    assert res.returncode == 1 and "nonexistent" in res.stderr
    assert listed(out) == []


@pytest.mark.faults
@pytest.mark.slow
def test_an_interrupted_tokenize_leaves_the_old_dataset_or_the_new_one(dataset):
    """`synth tokenize` killed with -9 at random moments, six times: after each kill the dataset
    is the old one or the new one (validate says which, or that a switch is pending, which the
    next writer finishes); a torn metadata.json makes it refuse before changing anything."""
    synth = SYNTH

    def profiles() -> set[str]:
        out = set()
        for line in (dataset / "manifest.jsonl").read_text().splitlines():
            meta = json.loads((dataset / json.loads(line)["path"] / "metadata.json").read_text())
            out.add(meta["tokens"]["speech_profile"])
            samples = (dataset / json.loads(line)["path"] / "samples.jsonl").read_text().splitlines()
            out.add("rate:10" if json.loads(samples[0])["speech_tokens"] != 300 else "llama-omni")
        return out

    rng = random.Random(7)
    started = time.monotonic()
    assert subprocess.run([synth, "tokenize", str(dataset), "--speech-profile", "rate:10"]).returncode == 0
    whole = time.monotonic() - started
    for k in range(6):
        target = "llama-omni" if k % 2 == 0 else "rate:10"
        proc = subprocess.Popen([synth, "tokenize", str(dataset), "--speech-profile", target],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0.3, max(0.4, whole)))
        proc.kill()
        proc.wait()
        DatasetWriter(dataset).recover()  # what any next writer does first
        report = validate_dataset(dataset)
        assert report.ok, report.format()
        assert len(profiles()) == 1  # never a mix
    meta = dataset / "conversations" / "team_standup" / "metadata.json"
    meta.write_text(meta.read_text()[:100])
    before = {p: p.read_bytes() for p in dataset.rglob("*") if p.is_file()}
    res = subprocess.run([synth, "tokenize", str(dataset)], capture_output=True, text=True)
    assert res.returncode == 1 and "metadata.json: not valid JSON" in res.stderr
    assert {p: p.read_bytes() for p in dataset.rglob("*") if p.is_file()} == before
