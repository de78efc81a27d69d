"""Clients that stop reading: their calls are cut off after --stall-seconds and give their threads
and slots back, while health and ListVoices answer."""

from __future__ import annotations

import contextlib
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from synth.workflows.validate import validate_dataset
from synth_client import SynthClient, check_health
from synth_client.v1 import synth_pb2 as pb
from synth_server import ServerOptions, ServiceConfig, SynthServer
from tests.helpers import REPO
from tests.server.serving import LONG, NO_RETRY, log_lines, long_dialog, served, target


def test_a_reader_that_stops_is_cut_off_and_health_answers(engine, tmp_path):
    """In-process: GetConversation streams from a client that never asks for a message (its
    flow-control windows at 64 KiB) hold the two stream slots; more are refused at once; Health
    and ListVoices answer; after --stall-seconds the slots come back. (3 s: with 1 s, a loaded
    machine could give the slots back before the third call was refused.)"""
    config = ServiceConfig(out=tmp_path / "ds", max_streams=2, stall_seconds=3.0)
    srv = SynthServer(engine, config, ServerOptions(host="127.0.0.1", port=0)).start()
    hostile = grpc.insecure_channel(target(srv), [("grpc.http2.bdp_probe", 0)])
    try:
        with SynthClient(target(srv)) as c:
            list(c.synthesize(LONG[:6], conversation_id="stored"))
        stub = hostile.unary_stream(
            "/synth.v1.Synth/GetConversation",
            request_serializer=pb.GetConversationRequest.SerializeToString,
            response_deserializer=pb.SynthesizeResponse.FromString,
        )
        calls = [stub(pb.GetConversationRequest(conversation_id="stored")) for _ in range(2)]
        deadline = time.monotonic() + 10
        while srv.service.admission.streams.used < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert srv.service.admission.streams.used == 2
        with SynthClient(target(srv), backoff=NO_RETRY) as c:
            with pytest.raises(grpc.RpcError) as err:
                list(c.get_conversation("stored", timeout=5))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit 2" in err.value.details()
            began = time.monotonic()
            assert len(c.list_voices(timeout=2)) == 18
            with grpc.insecure_channel(target(srv)) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            assert time.monotonic() - began < 1.0
            deadline = time.monotonic() + 30
            while srv.service.admission.streams.used and time.monotonic() < deadline:
                time.sleep(0.05)
            assert srv.service.admission.streams.used == 0  # cut off: their threads and slots are back
            assert [e.turn_id for e in list(c.get_conversation("stored"))[:-1]] == list(range(6))
        for call in calls:
            with pytest.raises(grpc.RpcError) as err:
                list(call)
            assert err.value.code() == grpc.StatusCode.CANCELLED
    finally:
        hostile.close()
        srv.stop(grace=0)


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


STALL = 15


@pytest.mark.faults
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
    # --stall-seconds 15: the slots must still be held when the refusal is tried, after a second
    # client process has started, the measurements and a Synthesize (about 2 s in all on a quiet
    # machine; on a loaded one that can pass the 6 s the stall was)
    with served(out, "--conversation-audio", "--max-in-flight", "4", "--max-streams", "8",
                "--stall-seconds", str(STALL), "--reflection") as srv:  # fmt: skip
        with SynthClient(srv.target) as c:
            events = list(c.synthesize(long_dialog(), conversation_id="big"))
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
            deadline = began + STALL + 10
            while (
                time.monotonic() < deadline and len(log_lines(srv.log(), "GetConversation", "CANCELLED")) < 8
            ):
                time.sleep(0.2)
            print(f"stalled streams ended {time.monotonic() - began:.1f} s after the measurements began")
            stalled = log_lines(srv.log(), "GetConversation", "CANCELLED")
            assert len(stalled) == 8 and all("client stopped reading" in line for line in stalled), srv.log()
            with SynthClient(srv.target) as c:  # the slots are back while the readers still sit there
                again = list(c.get_conversation("big", timeout=30))
        assert [e.wav for e in again[:-1]] == [e.wav for e in events[:-1]]
        assert (
            again[-1].files["conversation.wav"] == (out / "conversations/big/conversation.wav").read_bytes()
        )
        assert check_health(srv.target) == "SERVING"
    assert validate_dataset(out).ok


@pytest.mark.faults
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
                hogs = [line for line in log_lines(srv.log(), "Synthesize") if "conversation_id=hog" in line]
                time.sleep(0.2)
            print(f"refused {refused} time(s); served {served_at} s after the callers started; {hogs}")
            assert refused > 0  # the two callers did hold both slots
            assert served_at is not None, srv.log()
            # each ended: cut off for not reading, or (default windows: the client's transport may
            # grow its windows and take a whole answer in without the caller) finished; at least
            # one was cut off, the part this test is about
            assert len(hogs) == 2 and all(" code=CANCELLED " in line or " code=OK " in line for line in hogs)
            assert any("client stopped reading (no message taken for 4 s)" in line for line in hogs), (
                srv.log()
            )
            synthesis = max(float(re.search(r"latency_sec=(\S+)", line).group(1)) for line in hogs)
            assert served_at < synthesis + 4 + 5  # freed within --stall-seconds of the stall (and a tick)
    report = validate_dataset(out)
    assert report.ok, report.format()
    listed = [json.loads(x)["conversation_id"] for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert "patient" in listed and set(listed) <= {"patient", "hog0", "hog1"}
    assert sorted(p.name for p in (out / "conversations").iterdir()) == sorted(listed)
