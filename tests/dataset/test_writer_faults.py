"""The writer under faults, with real files and real processes: a disk that fills up at every
write of a conversation (a real tmpfs of a few hundred KiB), kill -9 at random moments, several
writers (separate processes, separate PID namespaces where `unshare` can make them) on one
dataset folder, a full disk while the conversation audio is mixed. After each: the dataset
validates, every conversation is there exactly once, nothing is written outside the output root."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from synth.dataset.writer import DatasetWriter
from synth.dialogs.build import build_dialog
from synth.domain import Source
from synth.errors import WriteFailed
from synth.produce.pipeline import Pipeline
from synth.workflows.validate import validate_dataset
from tests.helpers import PAGE, fill_leaving, listed, small_volume, write_jsonl


@pytest.fixture(scope="module")
def conversations(quiet_engine):
    pipe = Pipeline(quiet_engine)
    return [
        pipe.run(build_dialog([("A", "Hi there."), ("B", "Hello.")], f"c{i}", Source("faults")))
        for i in range(40)
    ]


@pytest.mark.slow
def test_disk_full_at_every_write_loses_nothing(tmp_path, conversations):
    """Sweep the free space page by page so that the disk fills during every step of a write:
    the WAVs, transcripts, metadata, the rename and the manifest append (whose line is made to
    cross a page boundary). A failed write leaves nothing listed and no torn line; once space is
    back the same writer goes on, and the dataset validates with every conversation once."""
    with small_volume(tmp_path / "vol", 768) as vol:
        root = vol / "ds"
        writer = DatasetWriter(root)
        writer.write(conversations[0])
        # make the manifest end a few bytes before a page boundary
        first = (root / "manifest.jsonl").stat().st_size
        with open(root / "manifest.jsonl", "ab") as fh:
            pad = PAGE - first - 40
            entry = {
                "conversation_id": "pad",
                "path": "conversations/pad",
                "num_turns": 1,
                "duration_sec": 1.0,
                "total_tokens": 1,
                "note": "",
            }
            entry["note"] = "x" * (pad - len(json.dumps(entry, separators=(",", ":"))) - 1)
            fh.write((json.dumps(entry, separators=(",", ":")) + "\n").encode())
        (root / "conversations" / "pad").mkdir()
        assert (root / "manifest.jsonl").stat().st_size == PAGE - 40
        kinds: set[str] = set()
        written = ["c0"]
        for pages, conv in zip(range(0, 30), conversations[1:]):
            filler = fill_leaving(vol, pages)
            try:
                writer.write(conv)
                written.append(conv.conversation_id)
            except WriteFailed:
                kinds.add("manifest append")
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                kinds.add("folder files")
            finally:
                filler.unlink()
            data = (root / "manifest.jsonl").read_bytes()
            assert data.endswith(b"\n") and all(json.loads(x) for x in data.splitlines())
            assert listed(root) == written[:1] + ["pad"] + written[1:]
            assert sorted(os.listdir(root / "conversations")) == sorted(written + ["pad"])
            assert os.listdir(root / ".tmp") == []
        assert kinds == {"manifest append", "folder files"}, kinds
        assert len(written) > 5  # with enough pages free, writes succeed again
        shutil.rmtree(root / "conversations" / "pad")
        lines = (root / "manifest.jsonl").read_bytes().splitlines()
        (root / "manifest.jsonl").write_bytes(b"".join(x + b"\n" for x in lines if b'"pad"' not in x))
        report = validate_dataset(root)
        assert report.ok, report.errors
        assert sorted(listed(root)) == sorted(written)


def test_a_torn_line_is_repaired_and_the_next_line_is_not_glued(tmp_path, conversations):
    """The failure the issue saw: a fragment left in the manifest, then more appends. Simulated
    by a process killed in the middle of its append (the fragment written by another process)."""
    root = tmp_path / "ds"
    writer = DatasetWriter(root)
    writer.write(conversations[0])
    with open(root / "manifest.jsonl", "ab") as fh:
        fh.write(b'{"conversation_id":"c1","path":"conv')  # 64 bytes of a line, no newline
    other = DatasetWriter(root)  # another process's writer meets it under the lock
    other.write(conversations[1])
    assert listed(root) == ["c0", "c1"]
    assert validate_dataset(root).ok


KILL_RUN = """
import sys
from synth.cli import main
sys.exit(main(["generate", "--dialogs", sys.argv[1], "--out", sys.argv[2], "--quiet",
               "--noise-scale", "0", "--noise-w", "0", "--in-flight", "2"]))
"""


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume(tmp_path):
    """Many runs killed at random moments; each rerun resumes; the end state validates with every
    dialog exactly once."""
    dialogs = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {
                "conversation_id": f"k{i}",
                "turns": [
                    {"speaker": "A", "text": f"Number {i} is here."},
                    {"speaker": "B", "text": "Good, thank you."},
                ],
            }
            for i in range(12)
        ],
    )
    out = tmp_path / "ds"
    rng = random.Random(5)
    for _ in range(6):
        p = subprocess.Popen(
            [sys.executable, "-c", KILL_RUN, str(dialogs), str(out)],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(1.5, 5.0))
        p.send_signal(signal.SIGKILL)
        p.wait()
    res = subprocess.run(
        [sys.executable, "-c", KILL_RUN, str(dialogs), str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    assert validate_dataset(out).ok
    assert sorted(listed(out)) == sorted(f"k{i}" for i in range(12))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl", "ds"]  # nothing outside the root


def _writer_command(unshare: bool) -> list[str]:
    base = [sys.executable, "-c", WRITER]
    if unshare and shutil.which("unshare"):
        probe = subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True)
        if probe.returncode == 0:
            return ["unshare", "--pid", "--fork", *base]
    return base


WRITER = """
import sys
import numpy as np
from synth.audio import SAMPLE_RATE
from synth.dialogs.build import build_dialog
from synth.domain import Conversation, Source, SynthesizedTurn, Voice
from synth.dataset.writer import AlreadyWritten, Claimed, DatasetWriter

root, who, ids = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
writer = DatasetWriter(root)
writer.recover()   # a writer starting up beside the others: it must not touch their staging folders
voice = Voice("v", "test", "m", "s")
for cid in ids:
    dialog = build_dialog([("A", "Hello there.")], cid, Source(who))
    audio = np.full(SAMPLE_RATE, 0.1, dtype=np.float32)
    turn = SynthesizedTurn(0, "A", voice, "Hello there.", audio, SAMPLE_RATE)
    try:
        writer.write(Conversation(dialog, {"A": voice}, [turn]))
    except (AlreadyWritten, Claimed):  # another writer listed it, or is writing it now
        pass
print("done", who)
"""


@pytest.mark.parametrize("namespaces", [False, True], ids=["one-pid-namespace", "own-pid-namespaces"])
def test_writers_on_one_folder_never_lose_or_duplicate(tmp_path, namespaces):
    """Six processes write overlapping sets of ids into one folder at once, each starting with
    recover(); in their own PID namespaces every one of them is PID 1 (the staging names that
    used the PID collided there)."""
    root = tmp_path / "ds"
    DatasetWriter(root)
    ids = [f"w{i}" for i in range(30)]
    procs = []
    for k in range(6):
        mine = ids[k * 4 : k * 4 + 10]
        procs.append(
            subprocess.Popen(
                [*_writer_command(namespaces), str(root), f"p{k}", ",".join(mine)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert sorted(listed(root)) == sorted(set(ids[:30]))
    assert validate_dataset(root).ok
    assert os.listdir(root / ".tmp") == []
    np.testing.assert_equal(len(listed(root)), len(set(listed(root))))


@pytest.mark.faults
def test_disk_full_while_mixing_the_conversation_audio_is_reported_and_nothing_is_kept(tmp_path):
    """The turns fit on the disk, conversation.wav does not: `generate --conversation-audio` lists
    the dialog in failures.jsonl ("cannot write conversation.wav ... nothing ... was kept"), exits 3
    (no traceback), leaves nothing of it behind, and a rerun with space back makes it."""
    from tests.helpers import EXAMPLES, run_cli

    source = write_jsonl(tmp_path / "one.jsonl", [json.loads(EXAMPLES.read_text().splitlines()[0])])
    sized = tmp_path / "sized"
    flags = ("--quiet", "--conversation-audio", "--noise-scale", "0", "--noise-w", "0")
    assert run_cli("generate", "--dialogs", str(source), "--out", str(sized), *flags).returncode == 0
    folder = next((sized / "conversations").iterdir())
    mix = (folder / "conversation.wav").stat().st_size
    rest = sum(p.stat().st_size for p in folder.iterdir() if p.name != "conversation.wav")
    pages = (rest + rest * 3 // 2 + mix // 2) // PAGE  # the turns, their staged full band, half the mix
    with small_volume(tmp_path / "vol", 4096) as vol:
        out = vol / "ds"
        out.mkdir()
        (out / "manifest.jsonl").touch()
        filler = fill_leaving(vol, pages)
        res = run_cli("generate", "--dialogs", str(source), "--out", str(out), *flags)
        assert res.returncode == 3, res.stderr
        assert "Traceback" not in res.stderr and "cannot write conversation.wav" in res.stderr
        failures = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
        assert len(failures) == 1 and "nothing of the conversation was kept" in failures[0]["error"]
        assert listed(out) == [] and not any((out / "conversations").iterdir())
        assert not [p for p in (out / ".tmp").iterdir() if p.is_dir()]
        filler.unlink()
        again = run_cli("generate", "--dialogs", str(source), "--out", str(out), *flags)
        assert again.returncode == 0, again.stderr
        assert len(listed(out)) == 1 and validate_dataset(out).ok
