import json
import os

import pytest

from synth.dialogs import build_dialog
from synth.domain import Source
from synth.pipeline import Pipeline
from synth.validate import validate_dataset
from synth.writer import AlreadyWritten, DatasetWriter


@pytest.fixture(scope="module")
def conversation(quiet_engine):
    from synth import sample_builder

    dialog = build_dialog(
        [("A", "Is the library open today?"), ("B", "Until eight tonight.")], "w1", Source("test")
    )
    return Pipeline(quiet_engine, sample_builder=sample_builder()).run(dialog)


def test_write_is_complete_and_listed_once(tmp_path, conversation):
    writer = DatasetWriter(tmp_path)
    entry = writer.write(conversation)
    folder = tmp_path / "conversations" / "w1"
    assert sorted(p.name for p in folder.iterdir()) == [
        "metadata.json",
        "samples.jsonl",
        "turn_0.txt",
        "turn_0.wav",
        "turn_1.txt",
        "turn_1.wav",
    ]
    assert (folder / "turn_1.txt").read_text() == "Until eight tonight.\n"
    assert entry.path == "conversations/w1" and entry.num_turns == 2
    assert entry.total_tokens > 0
    with pytest.raises(AlreadyWritten):
        writer.write(conversation)
    assert DatasetWriter(tmp_path).done_ids() == {"w1"}  # a second writer (process) sees it
    assert len((tmp_path / "manifest.jsonl").read_text().splitlines()) == 1
    assert list((tmp_path / ".tmp").iterdir()) == []
    assert validate_dataset(tmp_path).ok


def test_recover_cleans_every_kind_of_leftover(tmp_path, conversation):
    writer = DatasetWriter(tmp_path)
    writer.write(conversation)
    # 1. a temp folder of a dead process, 2. a renamed folder without its manifest line,
    # 3. a manifest line cut in the middle
    dead = tmp_path / ".tmp" / "x1.999999999.abcd1234"
    dead.mkdir()
    (dead / "turn_0.wav").write_bytes(b"partial")
    orphan = tmp_path / "conversations" / "orphan"
    orphan.mkdir()
    with open(tmp_path / "manifest.jsonl", "ab") as fh:
        fh.write(b'{"conversation_id": "half')
    report = DatasetWriter(tmp_path).recover()
    assert report.temp_removed == ["x1.999999999.abcd1234"]
    assert report.orphans_removed == ["orphan"]
    assert report.manifest_tail_truncated
    assert validate_dataset(tmp_path).ok


def test_live_process_temp_folders_are_kept(tmp_path):
    writer = DatasetWriter(tmp_path)
    live = tmp_path / ".tmp" / f"busy.{os.getppid()}.abcd1234"
    live.mkdir()
    writer.recover()
    assert live.exists()


def test_metadata_contract(tmp_path, conversation):
    DatasetWriter(tmp_path).write(conversation)
    meta = json.loads((tmp_path / "conversations" / "w1" / "metadata.json").read_text())
    for key in (
        "conversation_id",
        "total_turns",
        "total_duration_sec",
        "speakers",
        "turns",
        "voices",
        "engine",
        "seed",
        "sample_rate",
        "source",
        "total_tokens",
        "text_tokens",
        "speech_tokens",
    ):
        assert key in meta, key
    t0, t1 = meta["turns"]
    assert {
        "turn_id",
        "speaker",
        "audio_file",
        "transcript_file",
        "duration_sec",
        "start_time",
        "end_time",
    } <= set(t0)
    assert t1["start_time"] > t0["end_time"] and meta["total_duration_sec"] == t1["end_time"]
    assert meta["voices"]["A"]["id"] == t0["voice"]
