"""`synth serve` and `synth batch` as processes: SIGTERM drains, a server killed mid-batch and
restarted gives every conversation exactly once, and the client needs only grpcio + protobuf."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from synth.workflows.validate import validate_dataset
from synth_client import SynthClient
from tests.helpers import REPO, SYNTH, free_port, run_cli, start_server, write_jsonl


def manifest_ids(root: Path) -> list[str]:
    path = root / "manifest.jsonl"
    return [json.loads(l)["conversation_id"] for l in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_sigterm_drains_requests_in_flight(tmp_path):
    port = free_port()
    proc = start_server(tmp_path / "ds", port)
    up = run_cli("health", "--server", f"127.0.0.1:{port}")
    assert up.returncode == 0 and "SERVING" in up.stdout
    turns = [
        ("A" if i % 2 == 0 else "B", f"Turn {i}: the meeting moved to the third floor.") for i in range(8)
    ]
    with SynthClient(f"127.0.0.1:{port}") as c:
        stream = c.synthesize(turns, conversation_id="drained")
        first = next(stream)
        proc.send_signal(signal.SIGTERM)
        rest = list(stream)
    assert first.turn_id == 0 and rest[-1].conversation_id == "drained" and rest[-1].written
    assert proc.wait(timeout=60) == 0
    assert manifest_ids(tmp_path / "ds") == ["drained"]
    down = run_cli("health", "--server", f"127.0.0.1:{port}", "--timeout", "2")
    assert down.returncode == 1
    assert validate_dataset(tmp_path / "ds").ok


@pytest.mark.slow
def test_server_killed_mid_batch_then_rerun_gives_each_conversation_once(tmp_path):
    records = [
        {
            "conversation_id": f"b{i:02d}",
            "turns": [f"Batch dialog {i} begins here.", "And it ends with this reply."],
        }
        for i in range(10)
    ]
    dialogs = write_jsonl(tmp_path / "dialogs.jsonl", records)
    server_out, local = tmp_path / "server_ds", tmp_path / "local_ds"
    port = free_port()
    proc = start_server(server_out, port)
    batch = subprocess.Popen(
        [
            SYNTH,
            "batch",
            "--server",
            f"127.0.0.1:{port}",
            "--dialogs",
            str(dialogs),
            "--concurrency",
            "2",
            "--out",
            str(local),
            "--quiet",
            "--failures",
            str(tmp_path / "failures.jsonl"),
            "--timeout",
            "10",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(manifest_ids(server_out)) < 3:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    out, err = batch.communicate(timeout=300)
    assert batch.returncode == 3, (out, err)  # some dialogs failed: the server went away
    assert 3 <= len(manifest_ids(server_out)) < 10
    failures = [json.loads(l) for l in (tmp_path / "failures.jsonl").read_text().splitlines()]
    # the server is gone, not busy: listed as unreachable, and the summary says so
    assert failures and all(f["code"] == "UNREACHABLE" for f in failures), failures
    assert "no server reachable" in out and "pushed back" not in out, out

    proc = start_server(server_out, port)
    try:
        res = run_cli(
            "batch",
            "--server",
            f"127.0.0.1:{port}",
            "--dialogs",
            str(dialogs),
            "--concurrency",
            "3",
            "--out",
            str(local),
            "--quiet",
            "--failures",
            str(tmp_path / "failures.jsonl"),
        )
        assert res.returncode == 0, res.stderr
        assert "skipped" in res.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    for root in (server_out, local):
        counts = Counter(manifest_ids(root))
        assert sorted(counts) == [r["conversation_id"] for r in records] and set(counts.values()) == {1}
        report = validate_dataset(root)
        assert report.ok, report.format()


@pytest.mark.slow
def test_batch_reports_bad_dialogs_and_round_robins(tmp_path):
    dialogs = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"conversation_id": "rr1", "turns": ["One.", "Two."]},
            "{nope",
            {"conversation_id": "rr2", "turns": ["Three.", "Four."]},
            {"conversation_id": "rr3", "turns": ["Five.", "Six."]},
        ],
    )
    ports = [free_port(), free_port()]
    procs = [start_server(tmp_path / f"s{i}", p) for i, p in enumerate(ports)]
    try:
        res = run_cli(
            "batch",
            *sum((["--server", f"127.0.0.1:{p}"] for p in ports), []),
            "--dialogs",
            str(dialogs),
            "--quiet",
            "--failures",
            str(tmp_path / "f.jsonl"),
        )
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=60)
    assert res.returncode == 3 and "d.jsonl line 2" in res.stderr
    assert [json.loads(l)["code"] for l in (tmp_path / "f.jsonl").read_text().splitlines()] == [
        "INVALID_ARGUMENT"
    ]
    served = [manifest_ids(tmp_path / f"s{i}") for i in range(2)]
    assert sorted(sum(served, [])) == ["rr1", "rr2", "rr3"] and all(served)  # both servers got work


def test_client_imports_and_works_with_only_grpcio_and_protobuf(tmp_path, engine):
    """The client in a child process where numpy, torch, piper and friends cannot be imported."""
    from synth_server import ServerOptions, ServiceConfig, SynthServer

    srv = SynthServer(
        engine, ServiceConfig(out=tmp_path / "ds"), ServerOptions(host="127.0.0.1", port=0)
    ).start()
    code = textwrap.dedent(f"""
        import sys
        BLOCKED = {{"numpy", "torch", "piper", "onnxruntime", "soundfile", "soxr", "transformers",
                   "datasets", "quicktok", "faster_whisper", "tqdm"}}
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        from synth_client import SynthClient, TurnEvent
        with SynthClient("127.0.0.1:{srv.port}") as c:
            events = list(c.synthesize([("A", "Only grpc here."), ("B", "Indeed.")], conversation_id="light"))
        assert isinstance(events[0], TurnEvent) and events[-1].written
        print("ok", len(events))
    """)
    try:
        res = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
        )
    finally:
        srv.stop(grace=0)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok 3"
