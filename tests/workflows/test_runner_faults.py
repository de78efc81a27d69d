"""Runs under faults, with real processes: shards into one folder (and merged from separate ones),
two generate runs sharing one folder, SIGTERM stopping a run cleanly."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from synth.workflows.validate import validate_dataset
from tests.helpers import SYNTH, listed, write_jsonl


@pytest.mark.slow
def test_shards_into_one_folder_and_merged_from_separate_ones(tmp_path):
    """Three `synth generate --shard I/3` processes at once into one shared folder; and the same
    shards into separate folders joined by `synth merge` (twice: the second copies nothing)."""
    dialogs = write_jsonl(
        tmp_path / "d.jsonl",
        [{"conversation_id": f"s{i:02d}", "turns": [f"Shard dialog {i}.", "Understood."]} for i in range(12)],
    )
    synth = SYNTH
    common = ["--dialogs", str(dialogs), "--quiet", "--noise-scale", "0", "--noise-w", "0"]
    procs = [
        subprocess.Popen(
            [synth, "generate", *common, "--out", str(tmp_path / "shared"), "--shard", f"{i}/3"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert sorted(listed(tmp_path / "shared")) == [f"s{i:02d}" for i in range(12)]
    assert validate_dataset(tmp_path / "shared").ok
    parts = []
    for i in range(3):
        out = tmp_path / f"part{i}"
        res = subprocess.run(
            [synth, "generate", *common, "--out", str(out), "--shard", f"{i}/3"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert res.returncode == 0, res.stderr
        parts.append(str(out))
    res = subprocess.run([synth, "merge", str(tmp_path / "merged"), *parts], capture_output=True, text=True)
    assert res.returncode == 0 and "merged 12 conversation(s)" in res.stdout, res.stderr
    res = subprocess.run([synth, "merge", str(tmp_path / "merged"), *parts], capture_output=True, text=True)
    assert res.returncode == 0 and "merged 0 conversation(s)" in res.stdout and "skipped 12" in res.stdout
    assert sorted(listed(tmp_path / "merged")) == [f"s{i:02d}" for i in range(12)]
    assert validate_dataset(tmp_path / "merged").ok


@pytest.mark.faults
@pytest.mark.slow
def test_two_generate_runs_on_one_folder_share_the_work(tmp_path):
    from tests.helpers import varied_dialogs

    source = write_jsonl(tmp_path / "d.jsonl", varied_dialogs(16, seed=9, turns=(2, 3)))
    out = tmp_path / "ds"
    synth = SYNTH
    cmd = [synth, "generate", "--dialogs", str(source), "--out", str(out), "--quiet"]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    results = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert not any("FAILED" in out_ or "already in the manifest" in err for out_, err in results)
    made = [int(o.split("generated ")[1].split(" ")[0]) for o, _ in results]
    assert sum(made) == 16 and sorted(listed(out)) == sorted(f"d9_{i:04d}" for i in range(16))
    assert validate_dataset(out).ok


@pytest.mark.faults
def test_sigterm_stops_generate_cleanly_and_no_lock_outlives_the_rerun(tmp_path):
    from tests.helpers import varied_dialogs

    source = write_jsonl(tmp_path / "d.jsonl", varied_dialogs(12, seed=4))
    out = tmp_path / "ds"
    synth = SYNTH
    cmd = [synth, "generate", "--dialogs", str(source), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(listed(out)) < 1:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM and "stopped (SIGTERM)" in err, err
    assert validate_dataset(out).ok
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert not list((out / ".tmp").iterdir())  # no staging folder, lock or claim left behind
    report = validate_dataset(out)
    assert report.ok and not report.warnings and len(listed(out)) == 12
