import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import run_cli


def test_llama_omni_export(tmp_path, example_dataset):
    out = tmp_path / "train.json"
    res = run_cli("export", str(example_dataset), str(out), "--to", "llama-omni")
    assert res.returncode == 0, res.stderr
    entries = json.loads(out.read_text())
    assert len(entries) == 18
    for e in entries:
        assert Path(e["speech"]).is_file()
        assert e["conversations"][0] == {"from": "human", "value": "<speech>"}
        assert e["conversations"][1]["from"] == "gpt" and e["conversations"][1]["value"]
    first = [e for e in entries if e["conversation_id"] == "bakery_morning"]
    assert [e["turn_number"] for e in first] == [0, 1, 2, 3]
    turn1 = (example_dataset / "conversations" / "bakery_morning" / "turn_1.txt").read_text().strip()
    assert first[0]["conversations"][1]["value"] == turn1  # chat: the reply is the next turn
    rel = tmp_path / "rel.json"
    run_cli("export", str(example_dataset), str(rel), "--to", "llama-omni", "--relative")
    assert all((example_dataset / e["speech"]).is_file() for e in json.loads(rel.read_text()))


def test_hf_export_loads_from_disk(tmp_path, example_dataset):
    import datasets

    out = tmp_path / "hf"
    res = run_cli("export", str(example_dataset), str(out), "--to", "hf")
    assert res.returncode == 0, res.stderr
    ds = datasets.load_from_disk(str(out))
    assert len(ds) == 18
    assert isinstance(ds.features["audio"], datasets.Audio) and ds.features["audio"].sampling_rate == 16000
    row = ds.remove_columns("audio")[0]
    assert row["conversation_id"] == "bakery_morning" and row["turn_number"] == 0
    # datasets decodes Audio with torchcodec where installed; the stored bytes are a real WAV:
    raw = ds.cast_column("audio", datasets.Audio(decode=False))[0]["audio"]
    audio, rate = sf.read(io.BytesIO(raw["bytes"]), dtype="float32")
    assert rate == 16000 and abs(len(audio) / rate - row["duration_sec"]) < 1e-3
    assert np.abs(audio).max() > 0.05
    assert row["audio_path"] == "conversations/bakery_morning/turn_0.wav"  # the folder is kept


def test_hf_export_undecoded_reads_rows_without_torchcodec(tmp_path, example_dataset):
    """`ds[0]` on a machine without torchcodec (this one): the audio stays bytes + path."""
    import importlib.util

    import datasets

    assert importlib.util.find_spec("torchcodec") is None  # the point of the option
    out = tmp_path / "hf"
    res = run_cli("export", str(example_dataset), str(out), "--to", "hf", "--undecoded")
    assert res.returncode == 0, res.stderr
    row = datasets.load_from_disk(str(out))[0]
    assert row["audio_path"] == f"conversations/{row['conversation_id']}/turn_{row['turn_number']}.wav"
    audio, rate = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="float32")
    on_disk, _ = sf.read(str(example_dataset / row["audio_path"]), dtype="float32")
    assert rate == 16000 and np.array_equal(audio, on_disk)


def test_export_of_a_broken_dataset_names_the_file(tmp_path, example_dataset):
    ds = tmp_path / "ds"
    shutil.copytree(example_dataset, ds)
    (ds / "conversations" / "lost_umbrella" / "samples.jsonl").unlink()
    res = run_cli("export", str(ds), str(tmp_path / "x.json"), "--to", "llama-omni")
    assert res.returncode == 1 and "lost_umbrella/samples.jsonl: missing" in res.stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("gzip", [False, True])
def test_lhotse_export_loads_and_validates_with_lhotse(tmp_path, example_dataset, gzip):
    import lhotse
    from lhotse.qa import validate_recordings_and_supervisions

    out = tmp_path / "lhotse"
    res = run_cli("export", str(example_dataset), str(out), "--to", "lhotse", *(["--gzip"] if gzip else []))
    assert res.returncode == 0, res.stderr
    suffix = ".jsonl.gz" if gzip else ".jsonl"
    recordings = lhotse.load_manifest(out / f"recordings{suffix}")
    supervisions = lhotse.load_manifest(out / f"supervisions{suffix}")
    cuts = lhotse.CutSet.from_file(out / f"cuts{suffix}").to_eager()
    assert isinstance(recordings, lhotse.RecordingSet) and isinstance(supervisions, lhotse.SupervisionSet)
    validate_recordings_and_supervisions(recordings, supervisions)
    lhotse.validate(cuts, read_data=True)
    assert len(cuts) == 18
    cut = cuts["bakery_morning-turn_1"]
    sup = cut.supervisions[0]
    assert (
        sup.text == (example_dataset / "conversations" / "bakery_morning" / "turn_1.txt").read_text().strip()
    )
    assert sup.speaker == "B" and sup.custom["conversation_id"] == "bakery_morning"
    assert sup.custom["turn_number"] == 1 and sup.custom["voice"]
    audio = cut.load_audio()[0]
    on_disk, _ = sf.read(
        str(example_dataset / "conversations" / "bakery_morning" / "turn_1.wav"), dtype="float32"
    )
    np.testing.assert_allclose(audio, on_disk, atol=1e-6)
