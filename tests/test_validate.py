"""Each check of `synth validate` on a real generated dataset, broken one way at a time."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from synth.workflows.validate import validate_dataset


@pytest.fixture
def dataset(tmp_path, example_dataset):
    out = tmp_path / "ds"
    shutil.copytree(example_dataset, out)
    return out


def first(ds):
    return ds / "conversations" / "bakery_morning"


def errors(ds):
    report = validate_dataset(ds)
    assert not report.ok
    return "\n".join(report.errors)


def test_generated_dataset_is_valid(example_dataset):
    report = validate_dataset(example_dataset)
    assert report.ok, report.format()
    assert report.conversations == 4 and report.turns == 18 and report.audio_sec > 30


def test_wrong_wav_format(dataset):
    sf.write(str(first(dataset) / "turn_0.wav"), np.zeros((8000, 2), np.float32), 22050, subtype="FLOAT")
    msg = errors(dataset)
    assert "bakery_morning/turn_0.wav" in msg and "22050 Hz" in msg and "2 channels" in msg


def test_empty_and_unclean_transcripts(dataset):
    (first(dataset) / "turn_1.txt").write_text("  \n")
    (first(dataset) / "turn_2.txt").write_text("Then I will , he said .\n")
    msg = errors(dataset)
    assert "turn_1.txt: empty transcript" in msg and "turn_2.txt: transcript is not clean" in msg


def test_missing_files_and_fields(dataset):
    (first(dataset) / "turn_3.wav").unlink()
    meta_path = dataset / "conversations" / "lost_umbrella" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["turns"][0]["duration_sec"]
    meta["turns"][2]["turn_id"] = 7
    meta["turns"][1]["duration_sec"] += 1.0
    meta_path.write_text(json.dumps(meta))
    msg = errors(dataset)
    assert "bakery_morning/turn_3.wav: missing" in msg
    assert "turns[0]: missing field 'duration_sec'" in msg
    assert "turn_id 7, expected 2" in msg
    assert "turns[1]: duration_sec" in msg and "the WAV lasts" in msg


def test_manifest_mismatches(dataset):
    manifest = dataset / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    manifest.write_text(
        "\n".join(
            lines[1:]
            + [
                lines[1],
                '{"conversation_id": "ghost", "path": '
                '"conversations/ghost", "num_turns": 1, '
                '"duration_sec": 1.0, "total_tokens": 5}',
            ]
        )
        + "\n"
    )
    msg = errors(dataset)
    assert "bakery_morning: folder not in manifest.jsonl" in msg
    assert "'lost_umbrella' listed 2 times" in msg
    assert "'ghost' has no folder" in msg


def test_cli_exit_codes(dataset):
    from tests.helpers import run_cli

    ok = run_cli("validate", str(dataset))
    assert ok.returncode == 0 and ok.stdout.strip().endswith("OK")
    (first(dataset) / "metadata.json").write_text("{not json")
    bad = run_cli("validate", str(dataset), "--json")
    assert bad.returncode == 1
    assert any("metadata.json: not valid JSON" in e for e in json.loads(bad.stdout)["errors"])
