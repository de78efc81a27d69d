import json
import os
import subprocess
import sys
import time

import pytest

from synth.dataset.writer import DatasetWriter
from synth.dialogs.build import build_dialog
from synth.domain import Source
from synth.errors import AlreadyWritten
from synth.produce.pipeline import Pipeline
from synth.workflows.validate import validate_dataset


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
        "integrity.json",
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
    dead = tmp_path / ".tmp" / "x1.host-1-abcd1234.ab12cd"  # its writer was killed: lock not held
    dead.mkdir()
    (tmp_path / ".tmp" / "x1.host-1-abcd1234.ab12cd.lock").write_bytes(b"")
    (dead / "turn_0.wav").write_bytes(b"partial")
    old = tmp_path / ".tmp" / "x2.host-1-abcd1234.ef34ab"  # killed before taking its lock, long ago
    old.mkdir()
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    orphan = tmp_path / "conversations" / "orphan"
    orphan.mkdir()
    with open(tmp_path / "manifest.jsonl", "ab") as fh:
        fh.write(b'{"conversation_id": "half')
    report = DatasetWriter(tmp_path).recover()
    assert report.temp_removed == ["x1.host-1-abcd1234.ab12cd", "x2.host-1-abcd1234.ef34ab"]
    assert report.orphans_removed == ["orphan"]
    assert report.manifest_tail_truncated
    assert validate_dataset(tmp_path).ok


def test_staging_folders_of_live_writers_are_kept(tmp_path):
    """Another process (any PID, any host on the volume) holds its staging folder's lock."""
    writer = DatasetWriter(tmp_path)
    live = tmp_path / ".tmp" / "busy.otherhost-1-abcd1234.ab12cd"
    live.mkdir()
    lock = tmp_path / ".tmp" / "busy.otherhost-1-abcd1234.ab12cd.lock"
    lock.write_bytes(b"")
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == b"locked\n"
        fresh = tmp_path / ".tmp" / "new.otherhost-1-abcd1234.cd34ef"  # no lock file, but new
        fresh.mkdir()
        assert writer.recover().temp_removed == []
        assert live.exists() and fresh.exists()
    finally:
        holder.kill()
        holder.wait()
    assert writer.recover().temp_removed == ["busy.otherhost-1-abcd1234.ab12cd"]


HOLD_LOCK = """
import fcntl, sys, time
fh = open(sys.argv[1], "rb")
fcntl.flock(fh, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


def test_torn_manifest_lines_anywhere_are_repaired(tmp_path, conversation):
    from synth.dataset.writer import repair_manifest_lines

    good = b'{"conversation_id":"a","path":"conversations/a","num_turns":1,"duration_sec":1}\n'
    glued = b'{"conversation_id":"b","pa' + good.replace(b'"a"', b'"c"').replace(b"/a", b"/c")
    data = good + b"garbage\n" + glued + b'{"conversation_id":"d'
    repaired, dropped, cut = repair_manifest_lines(data)
    assert dropped == [2, 3] and cut
    assert repaired == good + good.replace(b'"a"', b'"c"').replace(b"/a", b"/c")
    # a writer meeting a torn line in the middle repairs it under the lock instead of failing
    writer = DatasetWriter(tmp_path)
    writer.write(conversation)
    with open(tmp_path / "manifest.jsonl", "ab") as fh:
        fh.write(b'{"conversation_id": "torn\n')
    assert writer.done_ids() == {"w1"}
    assert validate_dataset(tmp_path).ok


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


def test_a_manifest_rewritten_under_the_same_inode_is_read_anew(tmp_path):
    """The workers' parent and `generate --repair` replace the manifest whole; once the old file
    is gone its inode number can come back for a later one, so a writer that read the old file
    up to some point must not read the new one on from there (mid-line: the old code took it
    for a torn line no repair mends and recursed until RecursionError, seen with three shards
    into one folder). Written here in place, which looks the same to the writer."""
    from synth.testing import dialog, make_dataset

    root = tmp_path / "ds"
    make_dataset(root, [dialog([("A", "Hello there." * (i + 1)), ("B", "Hi.")], f"c{i}") for i in range(4)])
    writer = DatasetWriter(root)
    assert writer.done_ids() == {"c0", "c1", "c2", "c3"}
    manifest = root / "manifest.jsonl"
    lines = manifest.read_bytes().splitlines(keepends=True)
    inode = os.stat(manifest).st_ino
    other = lines[0].replace(b'"c0"', b'"x9"')  # another writer's line, added later
    with open(manifest, "r+b") as fh:  # c1 taken out, and a line appended: the same inode
        fh.write(b"".join([lines[0], *lines[2:], other, other.replace(b'"x9"', b'"x8"')]))
    assert os.stat(manifest).st_ino == inode and os.stat(manifest).st_size > sum(map(len, lines))
    assert writer.done_ids() == {"c0", "c2", "c3", "x9", "x8"}
    assert writer.is_done("x8") and not writer.is_done("c1")
