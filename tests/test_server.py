"""The gRPC service on a real loopback port, called with the real client."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
import soundfile as sf
from grpc_health.v1 import health_pb2, health_pb2_grpc

from synth.workflows.validate import validate_dataset
from synth_client import AsyncSynthClient, Backoff, SummaryEvent, SynthClient, TurnEvent
from synth_client.v1 import synth_pb2 as pb
from synth_server import ServerOptions, ServiceConfig, SynthServer

DIALOG = [
    ("A", "Good afternoon, is this seat taken?"),
    ("B", "No, please sit down."),
    ("A", "Thank you. The train is very full today."),
]
LONG = [
    ("A" if i % 2 == 0 else "B", f"This is turn number {i} of a long conversation about trains.")
    for i in range(30)
]
NO_RETRY = Backoff(attempts=1)


def start(engine, out: Path, **options) -> SynthServer:
    max_in_flight = options.pop("max_in_flight", ServiceConfig.max_in_flight)
    config = ServiceConfig(out=out, max_in_flight=max_in_flight)
    return SynthServer(engine, config, ServerOptions(host="127.0.0.1", port=0, **options)).start()


@pytest.fixture(scope="module")
def server(engine, tmp_path_factory):
    srv = start(engine, tmp_path_factory.mktemp("served") / "dataset", metrics_port=0)
    yield srv
    srv.stop(grace=0)


def target(srv: SynthServer) -> str:
    return f"127.0.0.1:{srv.port}"


def manifest_ids(root: Path) -> list[str]:
    path = root / "manifest.jsonl"
    return [json.loads(l)["conversation_id"] for l in path.read_text().splitlines()] if path.exists() else []


def test_one_dialog_streams_turns_then_summary(server):
    with SynthClient(target(server)) as c:
        events = list(c.synthesize(DIALOG, voices={"A": "joe-vt0.80"}, conversation_id="srv_one"))
    turns = [e for e in events if isinstance(e, TurnEvent)]
    assert [e.turn_id for e in turns] == [0, 1, 2] and isinstance(events[-1], SummaryEvent)
    assert len(events) == 4
    assert turns[0].voice == "joe-vt0.80" and turns[0].voice == turns[2].voice != turns[1].voice
    audio, rate = sf.read(io.BytesIO(turns[1].wav))
    assert rate == 16000 and abs(len(audio) / rate - turns[1].duration_sec) < 1e-3
    assert turns[1].start_time > turns[0].end_time
    summary = events[-1]
    assert summary.written and summary.path == "conversations/srv_one"
    assert summary.metadata["total_turns"] == 3 and summary.manifest_line["total_tokens"] > 0
    assert len(summary.samples) == 3
    root = server.service.config.out
    assert validate_dataset(root).ok
    assert (root / summary.path / "turn_2.txt").read_text().strip() == DIALOG[2][1]


def test_stream_only_writes_nothing(server):
    root = server.service.config.out
    before = manifest_ids(root)
    with SynthClient(target(server)) as c:
        events = list(c.synthesize(DIALOG, conversation_id="srv_stream_only", stream_only=True))
    assert not events[-1].written and events[-1].path == ""
    assert manifest_ids(root) == before and not (root / "conversations" / "srv_stream_only").exists()


@pytest.mark.slow
def test_twenty_concurrent_streams(server):
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            with SynthClient(target(server)) as c:
                results[i] = list(
                    c.synthesize(
                        [("A", f"Hello number {i}."), ("B", "Hello back.")], conversation_id=f"conc_{i:02d}"
                    )
                )
        except BaseException as exc:  # collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    for i, events in results.items():
        assert [e.turn_id for e in events[:-1]] == [0, 1]
        assert events[-1].conversation_id == f"conc_{i:02d}"
    root = server.service.config.out
    assert sum(1 for cid in manifest_ids(root) if cid.startswith("conc_")) == 20
    assert validate_dataset(root).ok


def test_in_flight_limit_answers_resource_exhausted(engine, tmp_path):
    srv = start(engine, tmp_path / "ds", max_in_flight=1)
    try:
        with SynthClient(target(srv)) as busy, SynthClient(target(srv), backoff=NO_RETRY) as other:
            stream = busy.synthesize(LONG, conversation_id="hog")
            next(stream)  # the one slot is now taken
            began = time.monotonic()
            with pytest.raises(grpc.RpcError) as err:
                list(other.synthesize(DIALOG, conversation_id="late"))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert time.monotonic() - began < 5  # an answer, not a hang
            stream.close()
    finally:
        srv.stop(grace=0)


def test_cancel_and_deadline_leave_nothing(engine, tmp_path):
    root = tmp_path / "ds"
    srv = start(engine, root)
    try:
        with SynthClient(target(srv)) as c:
            stream = c.synthesize(LONG, conversation_id="cancelled")
            assert next(stream).turn_id == 0
            stream.close()  # cancels the call
            with pytest.raises(grpc.RpcError) as err:
                list(c.synthesize(LONG, conversation_id="too_slow", timeout=1.0))
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        deadline = time.monotonic() + 30
        while srv.service.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.service.in_flight == 0  # the server stopped working on both
        assert manifest_ids(root) == []
        assert list((root / "conversations").iterdir()) == [] and list((root / ".tmp").iterdir()) == []
    finally:
        srv.stop(grace=0)


def _raw_call(srv, payload: bytes, metadata=()):
    channel = grpc.insecure_channel(target(srv))
    call = channel.unary_stream(
        "/synth.v1.Synth/Synthesize",
        request_serializer=lambda b: b,
        response_deserializer=pb.SynthesizeResponse.FromString,
    )
    try:
        return list(call(payload, metadata=metadata, timeout=30))
    finally:
        channel.close()


def test_bad_requests_get_the_right_code_and_write_nothing(server):
    root = server.service.config.out
    before = manifest_ids(root)
    cases = [
        (dict(dialog=[]), grpc.StatusCode.INVALID_ARGUMENT, "turns: dialog has no turns"),
        (dict(dialog=[("A", "Hi."), ("B", "   ")]), grpc.StatusCode.INVALID_ARGUMENT, "turns[1].text"),
        (dict(dialog=[("A", "x" * 3000)]), grpc.StatusCode.INVALID_ARGUMENT, "limit is 2000"),
        (dict(dialog=[("A", "y" * (10 * 1024 * 1024))]), grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
        (
            dict(dialog=DIALOG, conversation_id="../../etc"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "conversation_id",
        ),
        (dict(dialog=DIALOG, voices={"B": "ghost"}), grpc.StatusCode.NOT_FOUND, "unknown voice 'ghost'"),
        (
            dict(dialog=DIALOG, voices={"A": "joe-vt0.80", "B": "joe-vt0.80"}),
            grpc.StatusCode.INVALID_ARGUMENT,
            "more than one speaker",
        ),
        (dict(dialog=DIALOG, conversation_id="srv_one"), grpc.StatusCode.ALREADY_EXISTS, "already"),
    ]
    with SynthClient(target(server), backoff=NO_RETRY) as c:
        c.synthesize(DIALOG, conversation_id="srv_one")  # make sure it exists (lazy generator)
        for kwargs, code, text in cases:
            dialog = kwargs.pop("dialog")
            with pytest.raises(grpc.RpcError) as err:
                list(c.synthesize(dialog, **kwargs))
            assert err.value.code() == code, (kwargs, err.value.details())
            assert text in (err.value.details() or ""), err.value.details()
    valid = pb.SynthesizeRequest(turns=[pb.Turn(speaker="A", text="Hi.")]).SerializeToString()
    unknown_top = bytes([0xF8, 0x3E, 0x01]) + valid  # field 1007, varint 1
    with pytest.raises(grpc.RpcError) as err:
        _raw_call(server, unknown_top)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "field number 1007" in err.value.details()
    turn = pb.Turn(speaker="A", text="Hi.").SerializeToString() + bytes([0x48, 0x01])  # field 9 in Turn
    nested = bytes([0x12, len(turn)]) + turn
    with pytest.raises(grpc.RpcError) as err:
        _raw_call(server, nested)
    assert "turns[0]: field number 9" in err.value.details()
    entry = bytes([0x0A, 1]) + b"A" + bytes([0x12, 10]) + b"joe-vt0.80" + bytes([0x28, 0x07])  # + field 5
    in_map = valid + bytes([0x1A, len(entry)]) + entry
    with pytest.raises(grpc.RpcError) as err:
        _raw_call(server, in_map)
    assert "voices: field number 5" in err.value.details(), err.value.details()
    assert manifest_ids(root) == before


def test_auth_token(engine, tmp_path):
    srv = start(engine, tmp_path / "ds", auth_token="s3cret")
    try:
        for token in (None, "wrong"):
            with SynthClient(target(srv), token=token, backoff=NO_RETRY) as c:
                with pytest.raises(grpc.RpcError) as err:
                    list(c.synthesize(DIALOG))
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
                with pytest.raises(grpc.RpcError) as err:
                    c.list_voices()
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with SynthClient(target(srv), token="s3cret") as c:
            assert isinstance(list(c.synthesize(DIALOG))[-1], SummaryEvent)
        with grpc.insecure_channel(target(srv)) as channel:  # probes cannot send a token
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert len(manifest_ids(tmp_path / "ds")) == 1
    finally:
        srv.stop(grace=0)


def test_tls(engine, tmp_path):
    import subprocess

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    srv = start(engine, tmp_path / "ds", tls_cert=cert, tls_key=key)
    try:
        with SynthClient(f"localhost:{srv.port}", root_certificates=cert.read_bytes()) as c:
            assert len(c.list_voices()) == 18
        from tests.helpers import run_cli

        health = run_cli("health", "--server", f"localhost:{srv.port}", "--root-cert", str(cert))
        assert health.returncode == 0 and "SERVING" in health.stdout
        with SynthClient(f"localhost:{srv.port}", backoff=NO_RETRY) as plain:
            with pytest.raises(grpc.RpcError):
                plain.list_voices(timeout=5)
    finally:
        srv.stop(grace=0)


def test_health_reflection_and_metrics(engine, tmp_path):
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    config = ServiceConfig(out=tmp_path / "ds")
    options = ServerOptions(host="127.0.0.1", port=0, metrics_port=0, reflection=True)  # off unless asked
    srv = SynthServer(engine, config, options)
    channel = grpc.insecure_channel(target(srv))
    health = health_pb2_grpc.HealthStub(channel)
    srv.listen()  # accepting calls, model not warmed up yet
    check = lambda: health.Check(health_pb2.HealthCheckRequest(service="synth.v1.Synth"), timeout=5).status
    assert check() == health_pb2.HealthCheckResponse.NOT_SERVING
    srv.start()
    assert check() == health_pb2.HealthCheckResponse.SERVING
    services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert "synth.v1.Synth" in services and "grpc.health.v1.Health" in services
    with SynthClient(target(srv)) as c:
        list(c.synthesize(DIALOG, conversation_id="metered"))
    text = urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics", timeout=10).read().decode()
    assert "synth_turns_total 3.0" in text
    assert 'synth_requests_total{code="OK",method="Synthesize"} 1.0' in text
    for name in (
        "synth_audio_seconds_total",
        "synth_synthesis_seconds_total",
        "synth_queue_depth",
        "synth_requests_in_flight",
        "synth_errors_total",
    ):
        assert name in text
    srv.service.draining.set()  # what stop() does first
    with SynthClient(target(srv), backoff=NO_RETRY) as c:
        with pytest.raises(grpc.RpcError) as err:
            list(c.synthesize(DIALOG))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    srv.stop(grace=0)
    channel.close()


def test_async_client(server):
    async def go():
        async with AsyncSynthClient(target(server)) as c:
            voices = await c.list_voices()
            events = [e async for e in c.synthesize(DIALOG, conversation_id="async_one", seed=3)]
            return voices, events

    voices, events = asyncio.run(go())
    assert len(voices) == 18
    assert [e.turn_id for e in events[:-1]] == [0, 1, 2] and events[-1].metadata["seed"] == 3


def test_asr_check_on_the_server(engine, tmp_path):
    from synth.asr.recognizer import AsrCheck, Recognizer

    config = ServiceConfig(out=tmp_path / "ds", asr_check=AsrCheck(Recognizer(), threshold=0.5))
    srv = SynthServer(engine, config, ServerOptions(host="127.0.0.1", port=0)).start()
    try:
        with SynthClient(target(srv)) as c:
            summary = list(c.synthesize(DIALOG, conversation_id="asr_checked"))[-1]
    finally:
        srv.stop(grace=0)
    assert summary.metadata["asr_check"]["model"] == "embedded:tiny.en"
    assert all("wer" in t["asr_check"] for t in summary.metadata["turns"])


def test_stubs_are_generated_from_the_proto():
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    res = subprocess.run(
        [sys.executable, "proto/generate.py", "--check"], cwd=repo, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr


@pytest.mark.slow
def test_full_duplex_server_sends_events_and_conversation_audio(engine, tmp_path):
    """`serve --conversation-audio --backchannels`: the server writes conversation.wav and the
    backchannels' audio, streams them after the turns (Synthesize and GetConversation alike), and
    `synth batch --out` keeps a local copy that validates."""
    from synth.dataset.mixdown import ConversationAudioConfig
    from synth.produce.pipeline import PipelineConfig
    from synth.produce.timeline import GapDistribution
    from tests.helpers import free_port, run_cli, start_server, write_jsonl

    config = ServiceConfig(
        out=tmp_path / "srv",
        pipeline=PipelineConfig(gap=GapDistribution.parse("conversational"), backchannels=1.0),
        conversation_audio=ConversationAudioConfig(),
    )
    srv = SynthServer(engine, config, ServerOptions(host="127.0.0.1", port=0)).start()
    long = "We walked along the river for an hour, and then it started to rain quite heavily on us."
    try:
        with SynthClient(target(srv)) as c:
            events = list(
                c.synthesize([("A", long), ("B", "Oh no, did you get soaked?")], conversation_id="fd")
            )
            again = list(c.get_conversation("fd"))
    finally:
        srv.stop(grace=0)
    summary, stored = events[-1], again[-1]
    folder = tmp_path / "srv" / "conversations" / "fd"
    assert summary.metadata["events"] and "conversation.wav" in summary.files
    for name in ["conversation.wav", *(e["audio_file"] for e in summary.metadata["events"])]:
        assert summary.files[name] == stored.files[name] == (folder / name).read_bytes()
    assert validate_dataset(tmp_path / "srv").ok

    port = free_port()
    proc = start_server(tmp_path / "srv2", port, "--conversation-audio", "--backchannels", "1.0")
    try:
        dialogs = write_jsonl(
            tmp_path / "d.jsonl", [{"conversation_id": "fd2", "turns": [long, "Yes, completely."]}]
        )
        res = run_cli("batch", "--server", f"127.0.0.1:{port}", "--dialogs", str(dialogs), "--out",
                      str(tmp_path / "local"), "--quiet")  # fmt: skip
        assert res.returncode == 0, res.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    report = validate_dataset(tmp_path / "local")
    assert report.ok, report.format()
    local = tmp_path / "local" / "conversations" / "fd2"
    assert (local / "conversation.wav").read_bytes() == (
        tmp_path / "srv2/conversations/fd2/conversation.wav"
    ).read_bytes()


def test_a_log_line_cannot_be_forged_by_a_value():
    from synth_server.logs import format_record, kv_value

    assert kv_value("conv_01") == "conv_01"
    forged = kv_value("x\n2026-01-01 synth_server method=Synthesize code=OK")
    assert "\n" not in forged and forged.startswith('"') and "\\n" in forged
    assert kv_value("") == '""' and kv_value("a b") == '"a b"'
    line = format_record({"method": "GetConversation", "conversation_id": "a\r\nb=c"}, as_json=False)
    assert line.splitlines() == [line] and line.startswith("method=GetConversation ")
    assert json.loads(format_record({"id": "a\nb"}, as_json=True)) == {"id": "a\nb"}


def test_exposure_warnings_name_what_is_open():
    from synth_server.app import exposure_warnings, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("[::1]") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("[::]")
    assert exposure_warnings("127.0.0.1", 1, token=False, tls=False) == []
    both = exposure_warnings("[::]", 50051, token=False, tls=False)
    assert len(both) == 2 and "no --auth-token" in both[0] and "without TLS" in both[1]
    assert [w for w in exposure_warnings("0.0.0.0", 1, token=True, tls=False) if "bearer token" in w]
    assert exposure_warnings("0.0.0.0", 1, token=True, tls=True) == []


def test_a_reader_that_stops_is_cut_off_and_health_answers(engine, tmp_path):
    """In-process: GetConversation streams from a client that never asks for a message (its
    flow-control windows at 64 KiB) hold the two stream slots; more are refused at once; Health
    and ListVoices answer; after --stall-seconds the slots come back."""
    config = ServiceConfig(out=tmp_path / "ds", max_streams=2, stall_seconds=1.0)
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
        while srv.service.streams.used < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert srv.service.streams.used == 2
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
            deadline = time.monotonic() + 10
            while srv.service.streams.used and time.monotonic() < deadline:
                time.sleep(0.05)
            assert srv.service.streams.used == 0  # cut off: their threads and slots are back
            assert [e.turn_id for e in list(c.get_conversation("stored"))[:-1]] == list(range(6))
        for call in calls:
            with pytest.raises(grpc.RpcError) as err:
                list(call)
            assert err.value.code() == grpc.StatusCode.CANCELLED
    finally:
        hostile.close()
        srv.stop(grace=0)


def test_serve_refuses_at_start_a_dataset_made_with_other_sample_settings(engine, tmp_path):
    from synth.errors import ConflictError
    from synth.samples.builder import SampleConfig
    from synth_server.service import SynthService
    from tests.helpers import EXAMPLES, run_cli

    out = tmp_path / "ds"
    res = run_cli("generate", "--dialogs", str(EXAMPLES), "--out", str(out), "--quiet", "--limit", "1",
                  "--speech-profile", "rate:10")  # fmt: skip
    assert res.returncode == 0, res.stderr
    with pytest.raises(ConflictError, match="speech_profile llama-omni, not rate:10"):
        SynthService(engine, ServiceConfig(out=out))  # the default profile: refused before it starts
    service = SynthService(engine, ServiceConfig(out=out, samples=SampleConfig(speech_profile="rate:10")))
    service.engine.close()
    res = run_cli("serve", "--out", str(out), "--port", "0")
    assert res.returncode != 0 and "other sample settings" in res.stderr and "speech_profile" in res.stderr
