"""The service and the batch client under hostile clients, damaged datasets and safe defaults,
tried from outside: real `synth serve` processes on loopback ports, clients in child processes
that stop reading (SIGSTOP: nothing of their sockets is read any more), a real tmpfs that fills
up, real symbolic links, real ports in use, `synth batch` against servers that are gone."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from synth.workflows.validate import validate_dataset
from synth_client import Backoff, SummaryEvent, SynthClient, TurnEvent, check_health
from tests.helpers import REPO, free_port, run_cli, write_jsonl
from tests.helpers import fill_leaving, small_volume

pytestmark = pytest.mark.faults

SYNTH = str(Path(sys.executable).with_name("synth"))
NO_RETRY = Backoff(attempts=1)
SENTENCE = "We walked along the river for an hour, and then it started to rain on us."


@dataclass
class Served:
    proc: subprocess.Popen
    port: int
    log_path: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_serving(port: int, proc: subprocess.Popen, log: Path, tls_ca: Path | None = None) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"synth serve exited with {proc.returncode}: {log.read_text()}")
        try:
            if check_health(
                f"localhost:{port}" if tls_ca else f"127.0.0.1:{port}", timeout=1, tls_ca=tls_ca
            ) == ("SERVING"):
                return
        except grpc.RpcError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"synth serve did not become ready: {log.read_text()}")


@contextlib.contextmanager
def served(
    out: Path,
    *extra: str,
    host: str | None = "127.0.0.1",
    port: int | None = None,
    tls_ca: Path | None = None,
) -> Iterator[Served]:
    """A `synth serve` child process, its output in a file beside `out` (read at any time)."""
    port = port or free_port()
    log = out.parent / f"serve-{port}.log"
    hosting = ["--host", host] if host else []
    cmd = [SYNTH, "serve", *hosting, "--port", str(port), "--out", str(out), "--metrics-port", "-1", *extra]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_serving(port, proc, log, tls_ca)
        yield Served(proc, port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# A client process that starts COUNT calls and never reads them. "stop": it then stops itself
# (SIGSTOP), so that nothing of its sockets is read any more (not even gRPC's pings); "live": it
# sleeps, its gRPC threads taking in what the flow-control windows let through, the calls' own
# messages never asked for. One channel for all the calls, or one each. Windows "small": the
# initial 64 KiB (BDP probing off), so the server's sends wait on it almost at once; "default":
# as gRPC grows them, a few MB taken in before the sends wait.
READER = """
import os, signal, sys, time
import grpc
from synth_client.v1 import synth_pb2 as pb, synth_pb2_grpc as pb_grpc
target, method, count, channels, cid, mode, window = sys.argv[1:8]
count = int(count)
options = [("grpc.http2.bdp_probe", 0)] if window == "small" else []
chans = [grpc.insecure_channel(target, options) for _ in range(count if channels == "each" else 1)]
calls = []
for i in range(count):
    stub = pb_grpc.SynthStub(chans[i % len(chans)])
    if method == "get":
        calls.append(stub.GetConversation(pb.GetConversationRequest(conversation_id=cid)))
    else:
        text = " ".join(f"Sentence {k} of a turn that goes on for a while about the weather." for k in range(3))
        turns = [pb.Turn(speaker="AB"[k % 2], text=text) for k in range(6)]
        calls.append(stub.Synthesize(pb.SynthesizeRequest(conversation_id=f"{cid}{i}", turns=turns)))
time.sleep(0.5)  # the requests are out; stop before much of the answers can come in
print("started", flush=True)
if mode == "stop":
    os.kill(os.getpid(), signal.SIGSTOP)
time.sleep(3600)
"""


@contextlib.contextmanager
def non_reader(
    target: str, method: str, count: int, channels: str, cid: str, mode: str, window: str = "small"
) -> Iterator[None]:
    proc = subprocess.Popen(
        [sys.executable, "-c", READER, target, method, str(count), channels, cid, mode, window],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
        deadline = time.time() + 10
        while mode == "stop" and time.time() < deadline and _state(proc.pid) != "T":
            time.sleep(0.05)
        assert mode != "stop" or _state(proc.pid) == "T"
        yield
    finally:
        proc.kill()  # SIGKILL ends a stopped process too
        proc.wait()


@contextlib.contextmanager
def idle_reflection_streams(target: str, count: int) -> Iterator[None]:
    """Reflection streams whose client never sends a request: each holds a server thread that
    waits for one."""
    release = threading.Event()

    def nothing() -> Iterator[bytes]:
        release.wait()
        return
        yield b""

    channel = grpc.insecure_channel(target)
    info = channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=None,
        response_deserializer=None,
    )
    calls = [info(nothing()) for _ in range(count)]
    time.sleep(0.5)
    try:
        yield
    finally:
        for call in calls:
            call.cancel()
        release.set()
        channel.close()


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _timed(fn) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def _latencies(target: str, n: int = 20) -> dict[str, list[float]]:
    """Health (a fresh channel each time, as a probe does), Health on one channel, ListVoices."""
    out: dict[str, list[float]] = {"health": [], "health_channel": [], "list_voices": []}
    with grpc.insecure_channel(target) as channel, SynthClient(target, backoff=NO_RETRY) as client:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(n):
            out["health"].append(_timed(lambda: check_health(target, timeout=3)))
            out["health_channel"].append(
                _timed(lambda: stub.Check(health_pb2.HealthCheckRequest(service="synth.v1.Synth"), timeout=3))
            )
            out["list_voices"].append(_timed(lambda: client.list_voices(timeout=3)))
    return out


def _report(label: str, lat: dict[str, list[float]]) -> None:
    shown = ", ".join(
        f"{k} p50 {statistics.median(v) * 1000:.1f} ms max {max(v) * 1000:.1f} ms" for k, v in lat.items()
    )
    print(f"{label}: {shown}")


def _long_dialog(n: int = 4, sentences: int = 3) -> list[tuple[str, str]]:
    text = " ".join(f"{SENTENCE} This is part {k} of it." for k in range(sentences))
    return [("AB"[i % 2], text) for i in range(n)]


def _log_lines(text: str, method: str, code: str | None = None) -> list[str]:
    lines = [line for line in text.splitlines() if f"method={method} " in line]
    return [line for line in lines if code is None or f" code={code} " in line]


# -- 1. clients that stop reading ----------------------------------------------------------------
@pytest.mark.slow
def test_clients_that_stop_reading_never_starve_health(tmp_path):
    """Issue item 1: 40 GetConversation streams on one channel from a live client that never
    reads (its windows at 64 KiB), and 40 on a channel each from a client stopped with SIGSTOP,
    of a stored conversation of a few MB. Health, ListVoices and
    Synthesize answer at once throughout (their own threads); the streams past --max-streams are
    refused with RESOURCE_EXHAUSTED naming the limit; after --stall-seconds the stalled ones are
    ended and a reading client gets the conversation whole. (Before: with --max-in-flight 32,
    Health and ListVoices ran into their 5 s deadlines.)"""
    out = tmp_path / "ds"
    with served(out, "--conversation-audio", "--max-in-flight", "4", "--max-streams", "8",
                "--stall-seconds", "6", "--reflection") as srv:  # fmt: skip
        with SynthClient(srv.target) as c:
            events = list(c.synthesize(_long_dialog(), conversation_id="big"))
        size = sum(p.stat().st_size for p in (out / "conversations" / "big").iterdir())
        assert size > 3_000_000, size  # a few MB: far more than the sockets' buffers hold
        _report("idle", _latencies(srv.target, 10))
        with (
            non_reader(srv.target, "get", 40, "one", "big", "live"),
            non_reader(srv.target, "get", 40, "each", "big", "stop"),
            idle_reflection_streams(srv.target, 12),
        ):
            began = time.monotonic()
            lat = _latencies(srv.target)
            _report("80 GetConversation streams unread, 12 reflection streams idle", lat)
            assert max(max(v) for v in lat.values()) < 1.0, lat
            with SynthClient(srv.target, backoff=NO_RETRY) as c:
                took = _timed(lambda: list(c.synthesize([("A", "Still here.")], conversation_id="while")))
                print(f"Synthesize while they sit: {took:.2f} s")
                assert took < 10
                with pytest.raises(grpc.RpcError) as info:  # every stream slot is held
                    list(c.get_conversation("big", timeout=5))
                assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "limit 8" in info.value.details()
            # the stalled streams are ended once they have sent nothing for --stall-seconds
            deadline = began + 6 + 10
            while (
                time.monotonic() < deadline and len(_log_lines(srv.log(), "GetConversation", "CANCELLED")) < 8
            ):
                time.sleep(0.2)
            print(f"stalled streams ended {time.monotonic() - began:.1f} s after the measurements began")
            stalled = _log_lines(srv.log(), "GetConversation", "CANCELLED")
            assert len(stalled) == 8 and all("client stopped reading" in line for line in stalled), srv.log()
            with SynthClient(srv.target) as c:  # the slots are back while the readers still sit there
                again = list(c.get_conversation("big", timeout=30))
        assert [e.wav for e in again[:-1]] == [e.wav for e in events[:-1]]
        assert (
            again[-1].files["conversation.wav"] == (out / "conversations/big/conversation.wav").read_bytes()
        )
        assert check_health(srv.target) == "SERVING"
    assert validate_dataset(out).ok


@pytest.mark.slow
def test_synthesize_callers_that_never_read_give_their_slots_back(tmp_path):
    """Issue item 1, second part: two Synthesize callers that never read (a live client process
    that starts the calls and never asks for a message) hold both slots of --max-in-flight 2.
    Their conversations are written, then the sends of conversation.wav wait on them: within
    --stall-seconds the calls are ended, a new caller is served, and health answers throughout.
    (Before: RESOURCE_EXHAUSTED for as long as the callers lived; 90 s and counting.)"""
    out = tmp_path / "ds"
    with served(out, "--conversation-audio", "--max-in-flight", "2", "--stall-seconds", "4") as srv:
        with non_reader(srv.target, "synth", 2, "each", "hog", "live", "default"):
            began = time.monotonic()
            served_at = None
            with SynthClient(srv.target, backoff=NO_RETRY) as c:
                refused = 0
                while time.monotonic() - began < 90:
                    assert _timed(lambda: check_health(srv.target, timeout=3)) < 1.0
                    try:
                        list(c.synthesize([("A", "My turn now.")], conversation_id="patient", timeout=20))
                        served_at = time.monotonic() - began
                        break
                    except grpc.RpcError as exc:
                        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
                        refused += 1
                        time.sleep(0.5)
            hogs: list[str] = []
            deadline = time.monotonic() + 15  # the other one ends within a tick of its own stall
            while len(hogs) < 2 and time.monotonic() < deadline:
                hogs = [line for line in _log_lines(srv.log(), "Synthesize") if "conversation_id=hog" in line]
                time.sleep(0.2)
            print(f"refused {refused} time(s); served {served_at} s after the callers started; {hogs}")
            assert refused > 0  # the two callers did hold both slots
            assert served_at is not None, srv.log()
            assert len(hogs) == 2 and all(" code=CANCELLED " in line for line in hogs), srv.log()
            assert any("client stopped reading (no message taken for 4 s)" in line for line in hogs)
            synthesis = max(float(re.search(r"latency_sec=(\S+)", line).group(1)) for line in hogs)
            assert served_at < synthesis + 4 + 5  # freed within --stall-seconds of the stall (and a tick)
    report = validate_dataset(out)
    assert report.ok, report.format()
    listed = [json.loads(x)["conversation_id"] for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert "patient" in listed and set(listed) <= {"patient", "hog0", "hog1"}
    assert sorted(p.name for p in (out / "conversations").iterdir()) == sorted(listed)


# -- 3. disk full while mixing conversation.wav -------------------------------------------------
@pytest.mark.slow
def test_disk_full_while_mixing_conversation_audio(tmp_path):
    """Issue item 3 (serve): free space swept so that the disk fills while the turns, the mix
    (conversation.wav) or the records are written. Every call is OK or UNAVAILABLE "nothing was
    kept" (never INTERNAL), health says NOT_SERVING until a write succeeds again, nothing partial
    is left, and the dataset validates with exactly the conversations that were answered OK."""
    dialog = [("A", SENTENCE), ("B", "Oh no, did you get soaked?")]
    with small_volume(tmp_path / "vol", 16384) as vol:
        out = vol / "ds"
        with served(out, "--conversation-audio") as srv, SynthClient(srv.target, backoff=NO_RETRY) as c:
            list(c.synthesize(dialog, conversation_id="first"))
            folder = out / "conversations" / "first"
            mix = (folder / "conversation.wav").stat().st_size
            turns = sum(p.stat().st_size for p in folder.glob("turn_*"))
            pages = lambda n: n // 4096 + 1
            low, high = pages(turns), pages(turns) + 3 * pages(mix) + 16  # up to room for all of it
            answers: dict[str, str] = {}
            for i, free in enumerate(range(low, high, max(1, (high - low) // 12))):
                cid = f"sweep{i:02d}"
                filler = fill_leaving(vol, free)
                try:
                    list(c.synthesize(dialog, conversation_id=cid, timeout=60))
                    answers[cid] = "OK"
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE, (free, exc.code(), exc.details())
                    assert "nothing was kept" in exc.details(), exc.details()
                    answers[cid] = exc.details()
                    assert check_health(srv.target) == "NOT_SERVING"
                    with pytest.raises(grpc.RpcError) as info:  # refused at once while it cannot write
                        list(c.synthesize([("A", "Anyone there?")], conversation_id="refused"))
                    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
                finally:
                    filler.unlink()
                deadline = time.time() + 20
                while check_health(srv.target) != "SERVING" and time.time() < deadline:
                    time.sleep(0.1)
                assert check_health(srv.target) == "SERVING"
        print({k: v[:100] for k, v in answers.items()})
        failed = {k: v for k, v in answers.items() if v != "OK"}
        assert any("conversation.wav" in v for v in failed.values()), answers  # the mix itself failed
        assert any(v == "OK" for v in answers.values())
        assert "INTERNAL" not in srv.log()
        listed = [json.loads(x)["conversation_id"] for x in (out / "manifest.jsonl").read_text().splitlines()]
        assert sorted(listed) == sorted(["first", *(k for k, v in answers.items() if v == "OK")])
        assert sorted(p.name for p in (out / "conversations").iterdir()) == sorted(listed)
        assert [p for p in (out / ".tmp").iterdir() if p.is_dir()] == []
        report = validate_dataset(out)
        assert report.ok, report.format()


# -- 2. paths a finished dataset names --------------------------------------------------------
def _reseal(folder: Path) -> None:
    """Rewrite a conversation's integrity record to match its files, as someone who changes a
    dataset on purpose would: what is left to catch them is the path rule."""
    try:
        from synth.dataset.integrity import INTEGRITY_FILE, read_record, record_bytes
    except ImportError:  # a synth that records no integrity
        return
    rec = read_record(folder)
    if rec is not None:
        (folder / INTEGRITY_FILE).write_bytes(record_bytes(folder, rec["files"]))


def _received(events: list) -> bytes:
    out = b""
    for e in events:
        if isinstance(e, TurnEvent):
            out += e.wav
        elif isinstance(e, SummaryEvent):
            out += b"".join(e.files.values()) + e.samples_jsonl.encode()
    return out


def test_get_conversation_never_streams_a_file_outside_its_folder(tmp_path):
    """Issue item 2 (server): a turn's audio_file naming a file outside the folder, a turn WAV
    that is a symbolic link to an identical WAV outside, and a conversation folder that is a link
    to a copy outside: GetConversation answers DATA_LOSS naming the field or the link, and sends
    none of the outside bytes; `synth batch --out` lists it as NOT_COPIED. A link
    conversations/<id> for an id not yet made (pointing outside, or at another conversation) is
    replaced by the new conversation; what it pointed at is untouched (was: INTERNAL)."""
    root, outside = tmp_path / "ds", tmp_path / "outside"
    outside.mkdir()
    secret = b"TOP-SECRET-" * 400
    (outside / "secret.txt").write_bytes(secret)
    with served(root) as srv, SynthClient(srv.target, backoff=NO_RETRY) as c:
        for cid in ("p_meta", "p_link", "p_folder", "p_good"):
            list(c.synthesize([("A", f"This is {cid}."), ("B", "Understood.")], conversation_id=cid))
        conv = root / "conversations"
        meta = json.loads((conv / "p_meta/metadata.json").read_text())
        meta["turns"][0]["audio_file"] = "../../../outside/secret.txt"
        (conv / "p_meta/metadata.json").write_text(json.dumps(meta))
        _reseal(conv / "p_meta")
        shutil.copy(conv / "p_link/turn_0.wav", outside / "turn_0.wav")  # the same bytes, outside
        (conv / "p_link/turn_0.wav").unlink()
        (conv / "p_link/turn_0.wav").symlink_to(outside / "turn_0.wav")
        shutil.move(conv / "p_folder", outside / "p_folder")
        (conv / "p_folder").symlink_to(outside / "p_folder")
        (outside / "p_folder/turn_1.wav").write_bytes(secret)  # what the link would hand out
        expect = {
            "p_meta": "audio_file",
            "p_link": "turn_0.wav: a symbolic link",
            "p_folder": "conversations/p_folder is a symbolic link",
        }
        for cid, named in expect.items():
            received: list = []
            with pytest.raises(grpc.RpcError) as info:
                for event in c.get_conversation(cid, timeout=30):
                    received.append(event)
            assert info.value.code() == grpc.StatusCode.DATA_LOSS, (cid, info.value.details())
            assert named in info.value.details(), info.value.details()
            assert str(tmp_path) not in info.value.details()  # the server's folders stay its own
            assert b"TOP-SECRET" not in _received(received) and received == []
        good = list(c.get_conversation("p_good"))
        assert [e.turn_id for e in good[:-1]] == [0, 1]

        victim = outside / "victim"
        victim.mkdir()
        (victim / "keep.txt").write_text("mine")
        (conv / "p_new").symlink_to(victim)
        (conv / "p_alias").symlink_to(conv / "p_good")
        before = {p.name: p.read_bytes() for p in (conv / "p_good").iterdir()}
        for cid in ("p_new", "p_alias"):
            summary = list(c.synthesize([("A", f"Now {cid} is made."), ("B", "Good.")], conversation_id=cid))[
                -1
            ]
            assert summary.written
            assert (conv / cid).is_dir() and not (conv / cid).is_symlink()
        assert [p.name for p in victim.iterdir()] == ["keep.txt"] and (
            victim / "keep.txt"
        ).read_text() == "mine"
        assert {p.name: p.read_bytes() for p in (conv / "p_good").iterdir()} == before
        assert [e.wav for e in list(c.get_conversation("p_good"))[:-1]] == [e.wav for e in good[:-1]]

        dialogs = write_jsonl(
            tmp_path / "d.jsonl",
            [
                {"conversation_id": cid, "turns": [f"This is {cid}.", "Understood."]}
                for cid in ("p_meta", "p_good")
            ],
        )
        res = run_cli("batch", "--server", srv.target, "--dialogs", str(dialogs), "--out", str(tmp_path / "copy"),
                      "--quiet", "--failures", str(tmp_path / "f.jsonl"))  # fmt: skip
    assert res.returncode == 3, res.stdout + res.stderr
    failures = [json.loads(x) for x in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert [(f["conversation_id"], f["code"]) for f in failures] == [("p_meta", "NOT_COPIED")]
    assert "DATA_LOSS" in failures[0]["error"]
    copied = [
        json.loads(x)["conversation_id"] for x in (tmp_path / "copy/manifest.jsonl").read_text().splitlines()
    ]
    assert copied == ["p_good"] and validate_dataset(tmp_path / "copy").ok
    assert "INTERNAL" not in srv.log()


# -- 9. log lines -------------------------------------------------------------------------------
FORGED = "x\n2026-01-01 00:00:00,000 synth_server method=Synthesize conversation_id=forged code=OK turns=1"


@pytest.mark.parametrize("as_json", [False, True], ids=["key-value", "json"])
def test_log_lines_name_their_method_and_cannot_be_forged(tmp_path, as_json):
    """Issue item 9: an id with a newline in GetConversation forged a log line, and every
    GetConversation was logged as method=Synthesize. Now one line per call, each naming its own
    method, and nothing a client sends can start a line."""
    with served(tmp_path / "ds", *(["--log-json"] if as_json else [])) as srv:
        with SynthClient(srv.target, backoff=NO_RETRY) as c:
            list(c.synthesize([("A", "Logged once.")], conversation_id="logged"))
            list(c.get_conversation("logged"))
            for bad in (FORGED, "missing_one", "évil\r\nmethod=ListVoices"):
                with pytest.raises(grpc.RpcError):
                    list(c.get_conversation(bad))
    text = srv.log()
    if as_json:
        records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        calls = [r for r in records if "method" in r]
        assert [(r["method"], r["code"]) for r in calls] == [
            ("Synthesize", "OK"),
            ("GetConversation", "OK"),
            ("GetConversation", "INVALID_ARGUMENT"),
            ("GetConversation", "NOT_FOUND"),
            ("GetConversation", "INVALID_ARGUMENT"),
        ], text
        assert all(r["conversation_id"] in ("logged", "missing_one", "") for r in calls)
    else:
        calls = [
            line.split(" synth_server ", 1)[1]
            for line in text.splitlines()
            if " synth_server method=" in line
        ]
        methods = [
            (re.search(r"method=(\S+)", x).group(1), re.search(r"code=(\S+)", x).group(1)) for x in calls
        ]
        assert methods == [
            ("Synthesize", "OK"),
            ("GetConversation", "OK"),
            ("GetConversation", "INVALID_ARGUMENT"),
            ("GetConversation", "NOT_FOUND"),
            ("GetConversation", "INVALID_ARGUMENT"),
        ], text
        assert not any("conversation_id=forged" in line for line in text.splitlines()), text
        assert not any(line.startswith("method=") for line in text.splitlines()), text


# -- 10. safe defaults ----------------------------------------------------------------------------
def _listening(port: int) -> set[str]:
    """The local addresses of the sockets listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for name in ("tcp", "tcp6"):
        path = Path(f"/proc/net/{name}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, state = fields[1], fields[3]
            host, hex_port = address.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(_hex_address(host))
    return found


def _hex_address(host: str) -> str:
    import ipaddress

    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    address = ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))
    return str(address.ipv4_mapped or address)  # a v4-mapped socket listens on the IPv4 address


def test_serve_listens_on_loopback_unless_told_and_warns_when_exposed(tmp_path):
    """Issue item 10: `synth serve` alone listens on loopback only (gRPC and metrics); given
    --host beyond loopback, it warns at start about a missing token and missing TLS."""
    port, metrics = free_port(), free_port()
    log = tmp_path / "plain.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [
                SYNTH,
                "serve",
                "--port",
                str(port),
                "--metrics-port",
                str(metrics),
                "--out",
                str(tmp_path / "a"),
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_serving(port, proc, log)
        assert _listening(port) == {"127.0.0.1"} and _listening(metrics) == {"127.0.0.1"}
        assert "beyond loopback" not in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    with served(tmp_path / "b", host="0.0.0.0") as srv:
        assert _listening(srv.port) and _listening(srv.port) <= {"0.0.0.0", "::"}  # every interface
        text = srv.log()
        assert "beyond loopback" in text and "--auth-token" in text and "TLS" in text, text
    with served(tmp_path / "c", "--auth-token", "s3cret", host="0.0.0.0") as srv:
        text = srv.log()
        assert "without TLS" in text and "no --auth-token" not in text, text
        assert "s3cret" not in text


def test_deploy_manifest_and_image_refuse_to_run_open(tmp_path):
    """Issue item 10: the Kubernetes example says --host explicitly and does not start without
    its auth secret (the secret is not optional, and an empty one is refused: the container's
    command run here with the manifest's environment minus the secret exits at once, saying
    why); the Dockerfile's command says --host too."""
    docs = list(yaml.safe_load_all((REPO / "deploy/synth.yaml").read_text()))
    deployment = next(d for d in docs if d and d.get("kind") == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    command = container["command"] + container.get("args", [])
    assert command[:2] == ["synth", "serve"] and "--host" in command
    env = {e["name"]: e for e in container["env"]}
    ref = env["SYNTH_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref.get("optional", False) is False
    plain = {k: str(v["value"]) for k, v in env.items() if "value" in v}
    plain.update(SYNTH_OUT=str(tmp_path / "ds"), SYNTH_DEVICE="cpu", SYNTH_PORT=str(free_port()))
    base = {k: v for k, v in os.environ.items() if not k.startswith("SYNTH_")}
    for token in (None, "", "   "):
        extra = {} if token is None else {"SYNTH_AUTH_TOKEN": token}
        began = time.monotonic()
        res = subprocess.run(
            [SYNTH, *command[1:]], env={**base, **plain, **extra}, capture_output=True, text=True, timeout=120
        )
        assert res.returncode != 0, res.stdout + res.stderr
        assert "--require-auth" in res.stderr and "refusing to serve" in res.stderr, res.stderr
        assert time.monotonic() - began < 30  # before the model is loaded
    dockerfile = (REPO / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD\s+(\[.*\])\s*$", dockerfile, re.M).group(1))
    assert cmd[:2] == ["synth", "serve"] and "--host" in cmd
    assert not re.search(r"SYNTH_HOST=", dockerfile)  # the command says it, not a hidden default


def _private_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A CA of our own and a server certificate for localhost signed by it."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "1", "-subj", "/CN=synth test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")  # fmt: skip
    (folder / "san.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "1", "-extfile", "san.cnf")  # fmt: skip
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


def test_batch_health_and_client_trust_a_private_ca(tmp_path):
    """Issue item 10: a server whose certificate a private CA signed. `synth batch --tls-ca`,
    `synth health --tls-ca` and SynthClient(tls_ca=...) reach it; `synth batch --tls` with the
    system's CAs does not, and says the server is unreachable (fast, not after every deadline)."""
    ca, cert, key = _private_ca(tmp_path)
    dialogs = write_jsonl(
        tmp_path / "d.jsonl", [{"conversation_id": "tls1", "turns": ["Secure hello.", "Hi."]}]
    )
    with served(tmp_path / "ds", "--tls-cert", str(cert), "--tls-key", str(key), tls_ca=ca) as srv:
        target = f"localhost:{srv.port}"
        health = run_cli("health", "--server", target, "--tls-ca", str(ca))
        assert health.returncode == 0 and "SERVING" in health.stdout, health.stderr
        with SynthClient(target, tls_ca=ca) as c:
            assert len(c.list_voices()) > 0
        res = run_cli("batch", "--server", target, "--tls-ca", str(ca), "--dialogs", str(dialogs), "--quiet",
                      "--out", str(tmp_path / "copy"), "--failures", str(tmp_path / "f.jsonl"))  # fmt: skip
        assert res.returncode == 0, res.stdout + res.stderr
        began = time.monotonic()
        bad = run_cli("batch", "--server", target, "--tls", "--dialogs", str(dialogs), "--quiet",
                      "--unreachable-timeout", "3", "--failures", str(tmp_path / "g.jsonl"))  # fmt: skip
        assert bad.returncode == 3 and "no server reachable" in bad.stdout, bad.stdout + bad.stderr
        assert time.monotonic() - began < 30
    assert validate_dataset(tmp_path / "copy").ok


# -- 11. two servers on one port ----------------------------------------------------------------
def test_a_second_server_on_a_port_in_use_fails_naming_it(tmp_path):
    """Issue item 11: gRPC Python sets SO_REUSEPORT, so a second `synth serve` on a port in use
    started and took half of the clients into its own folder. Now it exits at once with "address
    in use" naming the port, and every conversation goes to the first server's folder."""
    with served(tmp_path / "first") as srv:
        res = subprocess.run(
            [SYNTH, "serve", "--host", "127.0.0.1", "--port", str(srv.port), "--out", str(tmp_path / "second"),
             "--metrics-port", "-1"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert res.returncode == 1, res.stdout + res.stderr
        assert "address in use" in res.stderr and str(srv.port) in res.stderr, res.stderr
        for i in range(6):  # a fresh connection each: none reaches anything but the first server
            with SynthClient(srv.target) as c:
                list(c.synthesize([("A", f"Call {i}.")], conversation_id=f"one_port_{i}"))
    listed = (tmp_path / "first" / "manifest.jsonl").read_text().splitlines()
    assert len(listed) == 6
    second = tmp_path / "second" / "manifest.jsonl"
    assert not second.exists() or second.read_text() == ""


# -- 13. a batch whose servers are all gone -------------------------------------------------------
def test_batch_against_servers_that_are_all_gone_fails_fast(tmp_path):
    """Issue item 13: 28 dialogs against two servers that are gone took 261 s with --timeout 20
    (connection refused retried as "pushed back by busy servers"). Now the batch stops once no
    server has been reachable for --unreachable-timeout (10 s), says so, and lists every dialog
    as UNREACHABLE."""
    dialogs = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"conversation_id": f"gone{i:02d}", "turns": [f"Dialog {i} begins.", "It ends."]}
            for i in range(28)
        ],
    )
    gone = [free_port(), free_port()]
    began = time.monotonic()
    res = run_cli("batch", *sum((["--server", f"127.0.0.1:{p}"] for p in gone), []), "--dialogs", str(dialogs),
                  "--timeout", "20", "--quiet", "--failures", str(tmp_path / "f.jsonl"), timeout=120)  # fmt: skip
    took = time.monotonic() - began
    print(f"28 dialogs, both servers gone: {took:.1f} s, exit {res.returncode}")
    assert res.returncode == 3, res.stdout + res.stderr
    assert took < 20, took
    assert "no server reachable" in res.stdout and "pushed back" not in res.stdout, res.stdout
    assert all(str(p) in res.stdout for p in gone)
    failures = [json.loads(x) for x in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert sorted(f["conversation_id"] for f in failures) == [f"gone{i:02d}" for i in range(28)]
    assert Counter(f["code"] for f in failures) == {"UNREACHABLE": 28}
    assert len(res.stderr.splitlines()) < 10  # a few of them shown, not 28 times the same reason


def test_batch_leaves_a_gone_server_out_and_finishes_on_the_other(tmp_path):
    """One of two servers is gone: its breaker opens, the other makes every dialog, nothing
    fails, and no call is counted as pushed back."""
    dialogs = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"conversation_id": f"half{i:02d}", "turns": [f"Dialog {i} begins.", "It ends."]}
            for i in range(12)
        ],
    )
    with served(tmp_path / "ds") as srv:
        began = time.monotonic()
        res = run_cli("batch", "--server", f"127.0.0.1:{free_port()}", "--server", srv.target, "--dialogs",
                      str(dialogs), "--quiet", "--concurrency", "4", "--failures", str(tmp_path / "f.jsonl"))  # fmt: skip
        took = time.monotonic() - began
    print(f"12 dialogs, one server of two gone: {took:.1f} s")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "generated 12" in res.stdout and "pushed back" not in res.stdout, res.stdout
    listed = (tmp_path / "ds" / "manifest.jsonl").read_text().splitlines()
    assert len(listed) == 12


# -- streams bounded like Synthesize ---------------------------------------------------------------
def test_stream_limits_refuse_then_serve_every_reader(tmp_path):
    """--max-streams 2 and eight readers at once that do read: the ones past the limit are told
    RESOURCE_EXHAUSTED and the client's own backoff brings every one of them its conversation."""
    out = tmp_path / "ds"
    with served(out, "--max-streams", "2") as srv:
        with SynthClient(srv.target) as c:
            list(c.synthesize(_long_dialog(6, 2), conversation_id="shared"))
        results: dict[int, object] = {}

        def read(i: int) -> None:
            with SynthClient(srv.target, backoff=Backoff(attempts=30, initial=0.1, maximum=1.0)) as c:
                try:
                    results[i] = list(c.get_conversation("shared", timeout=60))
                except grpc.RpcError as exc:
                    results[i] = exc

        threads = [threading.Thread(target=read, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        refused = _log_lines(srv.log(), "GetConversation", "RESOURCE_EXHAUSTED")
    assert all(isinstance(r, list) and isinstance(r[-1], SummaryEvent) for r in results.values()), results
    assert len(results) == 8
    print(f"{len(refused)} GetConversation call(s) refused past --max-streams 2, all 8 readers served")
