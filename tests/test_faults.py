"""Faults found from outside, with real files and real processes: a disk that fills up at every
write of a conversation (a real tmpfs of a few hundred KiB), kill -9 at random moments, several
writers (separate processes, separate PID namespaces where `unshare` can make them) on one
dataset folder. After each: the dataset validates, every conversation is there exactly once,
nothing is written outside the output root."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from synth.dataset.writer import DatasetWriter, WriteFailed
from synth.dialogs.build import build_dialog
from synth.domain import Source
from synth.produce.pipeline import Pipeline
from synth.workflows.validate import validate_dataset
from tests.helpers import free_port, start_server, write_jsonl

PAGE = 4096


@contextlib.contextmanager
def small_volume(path: Path, size_kib: int):
    """A real file system of `size_kib` KiB (tmpfs), so that writes really run out of space."""
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs here: the fault tests need root ({res.stderr.strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill_leaving(volume: Path, pages: int) -> Path:
    """Fill the volume completely, then free exactly `pages` pages."""
    filler = volume / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        chunk = b"\0" * PAGE
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    finally:
        os.close(fd)
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - pages * PAGE))
    return filler


def listed(root: Path) -> list[str]:
    path = root / "manifest.jsonl"
    return [json.loads(x)["conversation_id"] for x in path.read_bytes().splitlines()] if path.exists() else []


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


# -- the service under faults -----------------------------------------------------------------
def _serve(engine, out: Path, **options):
    from synth_server import ServerOptions, ServiceConfig, SynthServer

    config = ServiceConfig(out=out, max_in_flight=options.pop("max_in_flight", 64))
    return SynthServer(engine, config, ServerOptions(host="127.0.0.1", port=0, **options)).start()


def _health(port: int) -> str:
    from synth_client import check_health

    return check_health(f"127.0.0.1:{port}", timeout=2)


def test_server_on_a_full_disk_says_not_serving_then_recovers(engine, tmp_path):
    """A full volume: the call gets UNAVAILABLE (nothing kept), health goes NOT_SERVING, and once
    space is back a probe write brings SERVING back; the dataset then validates."""
    import grpc

    from synth_client import Backoff, SynthClient

    with small_volume(tmp_path / "vol", 2048) as vol:
        srv = _serve(engine, vol / "ds", probe_seconds=0.2)
        try:
            with SynthClient(f"127.0.0.1:{srv.port}", backoff=Backoff(attempts=1)) as c:
                list(c.synthesize([("A", "Before the disk fills up.")], conversation_id="before"))
                filler = fill_leaving(vol, 0)
                with pytest.raises(grpc.RpcError) as info:
                    list(
                        c.synthesize(
                            [("A", "The disk is full now."), ("B", "Oh no.")], conversation_id="full"
                        )
                    )
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "nothing was kept" in info.value.details()
                assert _health(srv.port) == "NOT_SERVING"
                with pytest.raises(grpc.RpcError) as info:  # refused early while unwritable
                    list(c.synthesize([("A", "Still full.")], conversation_id="still"))
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE
                filler.unlink()
                deadline = time.time() + 20
                while _health(srv.port) != "SERVING" and time.time() < deadline:
                    time.sleep(0.1)
                assert _health(srv.port) == "SERVING"
                list(c.synthesize([("A", "The disk is full now."), ("B", "Oh no.")], conversation_id="full"))
        finally:
            srv.stop(grace=0)
        assert sorted(listed(vol / "ds")) == ["before", "full"]
        assert validate_dataset(vol / "ds").ok


def test_server_restarts_on_a_dataset_with_a_torn_manifest(engine, tmp_path):
    """The issue's report: a torn line made every later request fail and the server refuse to
    start. Now it starts, repairs the line and serves."""
    from synth_client import SynthClient

    out = tmp_path / "ds"
    srv = _serve(engine, out)
    with SynthClient(f"127.0.0.1:{srv.port}") as c:
        list(c.synthesize([("A", "First one.")], conversation_id="one"))
    srv.stop(grace=0)
    with open(out / "manifest.jsonl", "ab") as fh:
        fh.write(b'{"conversation_id":"two","path":"conversations/two","num_tu')
    srv = _serve(engine, out)
    try:
        with SynthClient(f"127.0.0.1:{srv.port}") as c:
            list(c.synthesize([("A", "Second one.")], conversation_id="two"))
    finally:
        srv.stop(grace=0)
    assert listed(out) == ["one", "two"]
    assert validate_dataset(out).ok


def test_bad_bytes_deadlines_auth_and_metrics_host(engine, tmp_path):
    import urllib.request

    import grpc

    from synth_client.v1 import synth_pb2 as pb

    srv = _serve(engine, tmp_path / "ds", metrics_port=0, auth_token="s3cret")
    try:
        metadata = [("authorization", "Bearer s3cret")]
        with grpc.insecure_channel(f"127.0.0.1:{srv.port}") as channel:
            good = pb.SynthesizeRequest(turns=[pb.Turn(speaker="A", text="XXXX")]).SerializeToString()
            raw = channel.unary_stream(
                "/synth.v1.Synth/Synthesize", request_serializer=None, response_deserializer=None
            )
            with pytest.raises(grpc.RpcError) as info:
                list(raw(good.replace(b"XXXX", b"\xff\xfe\xfd\xfc"), metadata=metadata, timeout=10))
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "UTF-8" in info.value.details()
            stub = channel.unary_stream(
                "/synth.v1.Synth/Synthesize",
                request_serializer=pb.SynthesizeRequest.SerializeToString,
                response_deserializer=pb.SynthesizeResponse.FromString,
            )
            long = pb.SynthesizeRequest(
                turns=[pb.Turn(speaker="AB"[i % 2], text=f"Turn {i} of a long one.") for i in range(40)],
                stream_only=True,
            )
            with pytest.raises(grpc.RpcError) as info:
                list(stub(long, metadata=metadata, timeout=1.0))
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            with pytest.raises(grpc.RpcError) as info:
                list(stub(long, timeout=5))  # no token
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        deadline = time.time() + 30  # the deadlined call notices between sentences, then is counted
        while srv.service.in_flight and time.time() < deadline:
            time.sleep(0.05)
        text = (
            urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics", timeout=5).read().decode()
        )
        assert 'synth_requests_total{code="UNAUTHENTICATED",method="Synthesize"} 1.0' in text
        assert 'synth_requests_total{code="DEADLINE_EXCEEDED",method="Synthesize"} 1.0' in text
        assert 'synth_requests_total{code="INVALID_ARGUMENT",method="Synthesize"} 1.0' in text
        with pytest.raises(OSError):  # bound to --host, not to every address
            urllib.request.urlopen(f"http://127.0.0.2:{srv.metrics_port}/metrics", timeout=2)
    finally:
        srv.stop(grace=0)


@pytest.mark.slow
def test_one_id_twice_at_once_and_drain_keeps_the_port(engine, tmp_path):
    import threading

    import grpc

    from synth_client import Backoff, SynthClient

    srv = _serve(engine, tmp_path / "ds")
    turns = [("AB"[i % 2], f"This is turn {i} of the same conversation.") for i in range(12)]
    results: dict[str, object] = {}

    def call(name: str) -> None:
        with SynthClient(f"127.0.0.1:{srv.port}", backoff=Backoff(attempts=1)) as c:
            try:
                results[name] = list(c.synthesize(turns, conversation_id="same"))
            except grpc.RpcError as exc:
                results[name] = exc

    first = threading.Thread(target=call, args=("first",))
    first.start()
    time.sleep(1.0)
    began = time.perf_counter()
    call("second")
    assert isinstance(results["second"], grpc.RpcError)
    assert results["second"].code() == grpc.StatusCode.ALREADY_EXISTS
    assert time.perf_counter() - began < 1.0  # refused at admission, not after synthesizing
    stopper = threading.Thread(target=srv.stop, kwargs={"grace": 60})
    stopper.start()  # drain while the first call is still in flight
    time.sleep(0.3)
    assert _health(srv.port) == "NOT_SERVING"  # the port is still open during the drain
    first.join()
    stopper.join()
    assert not isinstance(results["first"], Exception)
    assert listed(tmp_path / "ds") == ["same"]


@pytest.mark.slow
def test_overload_never_drops_a_dialog_and_the_local_copy_is_complete(engine, tmp_path):
    """A batch wider than the server's limit (concurrency 8 against max_in_flight 2): every
    dialog is made, none fails. A second batch with a local copy fetches what the server had."""
    from synth.dialogs.sources import open_dialogs
    from synth.remote.batch import run_batch

    dialogs = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"conversation_id": f"o{i:02d}", "turns": [f"Overload dialog {i} is here.", "Fine, thanks."]}
            for i in range(16)
        ],
    )
    srv = _serve(engine, tmp_path / "server", max_in_flight=2)
    try:
        summary = run_batch(open_dialogs(str(dialogs)), [f"127.0.0.1:{srv.port}"], concurrency=8, timeout=300)
        assert summary.failed == 0 and summary.done == 16, summary.failures
        assert summary.retried > 0  # the server did push back
        local = tmp_path / "local"
        again = run_batch(
            open_dialogs(str(dialogs)), [f"127.0.0.1:{srv.port}"], concurrency=4, local_out=local, timeout=120
        )
    finally:
        srv.stop(grace=0)
    # the server had made all 16: each is copied into the fresh local folder, none counted as resumed
    assert again.failed == 0 and again.copied == 16 and again.skipped_existing == 0
    assert sorted(listed(local)) == sorted(listed(tmp_path / "server"))
    assert validate_dataset(local).ok and validate_dataset(tmp_path / "server").ok


@pytest.mark.slow
def test_shards_into_one_folder_and_merged_from_separate_ones(tmp_path):
    """Three `synth generate --shard I/3` processes at once into one shared folder; and the same
    shards into separate folders joined by `synth merge` (twice: the second copies nothing)."""
    dialogs = write_jsonl(
        tmp_path / "d.jsonl",
        [{"conversation_id": f"s{i:02d}", "turns": [f"Shard dialog {i}.", "Understood."]} for i in range(12)],
    )
    synth = Path(sys.executable).with_name("synth")
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


def test_a_deadline_inside_one_long_turn_stops_between_sentences(engine, tmp_path):
    import grpc

    from synth_client import Backoff, SynthClient

    srv = _serve(engine, tmp_path / "ds")
    long_turn = " ".join(f"This is sentence number {i} of one very long turn." for i in range(40))
    try:
        with SynthClient(f"127.0.0.1:{srv.port}", backoff=Backoff(attempts=1)) as c:
            began = time.perf_counter()
            with pytest.raises(grpc.RpcError) as info:
                list(c.synthesize([("A", long_turn)], conversation_id="long", timeout=1.0))
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            while srv.service.in_flight and time.perf_counter() - began < 30:
                time.sleep(0.05)
            # the server let go within a sentence or two of the deadline, not after 40 sentences
            assert time.perf_counter() - began < 3.0
    finally:
        srv.stop(grace=0)
    assert listed(tmp_path / "ds") == []


@pytest.mark.slow
def test_two_servers_on_one_folder_and_one_restarting(engine, tmp_path):
    """Two `synth serve` processes on one dataset folder, batches against both; one is killed
    with -9 and started again while the other writes. Every dialog once; the folder validates."""
    from synth.dialogs.sources import open_dialogs
    from synth.remote.batch import run_batch

    out = tmp_path / "shared"
    ports = [free_port(), free_port()]
    servers = [start_server(out, p) for p in ports]
    dialogs = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"conversation_id": f"t{i:02d}", "turns": [f"Two servers, dialog {i}.", "Noted."]}
            for i in range(24)
        ],
    )
    try:
        import threading

        result = {}
        worker = threading.Thread(
            target=lambda: result.setdefault(
                "s",
                run_batch(
                    open_dialogs(str(dialogs)), [f"127.0.0.1:{p}" for p in ports], concurrency=6, timeout=120
                ),
            )
        )
        worker.start()
        time.sleep(1.5)
        servers[0].kill()  # -9 while both serve the batch
        servers[0].wait()
        servers[0] = start_server(out, ports[0])  # starts up (recover) beside the other, which keeps writing
        worker.join()
    finally:
        for p in servers:
            p.terminate()
            p.wait(timeout=60)
    assert result["s"].failed == 0, result["s"].failures
    assert sorted(listed(out)) == [f"t{i:02d}" for i in range(24)]
    assert validate_dataset(out).ok


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


# -- issue 21: damaged and hostile datasets, interrupted tools, concurrent runs --------------------


@pytest.fixture()
def dataset(example_dataset, tmp_path) -> Path:
    """A copy of the README's example dataset, to damage."""
    copy = tmp_path / "ds"
    shutil.copytree(example_dataset, copy)
    return copy


def _cli(*args: str, timeout: float = 600):
    from tests.helpers import run_cli

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
    synth = str(Path(sys.executable).with_name("synth"))

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


@pytest.mark.faults
@pytest.mark.slow
def test_two_generate_runs_on_one_folder_share_the_work(tmp_path):
    from tests.helpers import varied_dialogs

    source = write_jsonl(tmp_path / "d.jsonl", varied_dialogs(16, seed=9, turns=(2, 3)))
    out = tmp_path / "ds"
    synth = str(Path(sys.executable).with_name("synth"))
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
    synth = str(Path(sys.executable).with_name("synth"))
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
