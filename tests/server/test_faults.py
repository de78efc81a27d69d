"""The service under faults: a full disk, a torn manifest at start, bad bytes, deadlines, auth, one
id twice at once, drain, overload through the batch client, two servers on one folder."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from synth.workflows.validate import validate_dataset
from tests.helpers import fill_leaving, free_port, listed, small_volume, start_server, write_jsonl


def _serve(engine, out: Path, **options):
    from synth_server import ServerOptions, ServiceConfig, SynthServer

    config = ServiceConfig(out=out, max_in_flight=options.pop("max_in_flight", 64))
    return SynthServer(engine, config, ServerOptions(host="127.0.0.1", port=0, **options)).start()


def _health(port: int) -> str:
    from synth_client import check_health

    return check_health(f"127.0.0.1:{port}", timeout=2)


def _timed(fn) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


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
    under_way = threading.Event()

    def call(name: str) -> None:
        with SynthClient(f"127.0.0.1:{srv.port}", backoff=Backoff(attempts=1)) as c:
            try:
                events = []
                for event in c.synthesize(turns, conversation_id="same"):
                    events.append(event)
                    under_way.set()
                results[name] = events
            except grpc.RpcError as exc:
                results[name] = exc

    first = threading.Thread(target=call, args=("first",))
    first.start()
    # its first turn is back: it holds the id (a fixed sleep let a slow start come second)
    assert under_way.wait(120), results
    began = time.perf_counter()
    call("second")
    assert isinstance(results["second"], grpc.RpcError)
    assert results["second"].code() == grpc.StatusCode.ALREADY_EXISTS
    assert time.perf_counter() - began < 1.0  # refused at admission, not after synthesizing
    assert first.is_alive()  # while the first was still being made
    stopper = threading.Thread(target=srv.stop, kwargs={"grace": 60})
    stopper.start()  # drain while the first call is still in flight
    deadline = time.monotonic() + 10  # until the drain has begun (the thread may start late)
    while (health := _health(srv.port)) == "SERVING" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert health == "NOT_SERVING" and first.is_alive()  # the port is still open during the drain
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


def test_a_deadline_inside_one_long_turn_stops_between_sentences(engine, tmp_path):
    import grpc

    from synth_client import Backoff, SynthClient

    srv = _serve(engine, tmp_path / "ds")
    long_turn = " ".join(f"This is sentence number {i} of one very long turn." for i in range(40))
    try:
        with SynthClient(f"127.0.0.1:{srv.port}", backoff=Backoff(attempts=1)) as c:
            # what one sentence takes here and now (the fastest of three, streamed, not written):
            # a loaded machine is slower at everything, the sentence the server finishes included
            sentence = min(
                _timed(
                    lambda: list(
                        c.synthesize([("A", long_turn[: long_turn.index(".") + 1])], stream_only=True)
                    )
                )
                for _ in range(3)
            )
            began = time.perf_counter()
            with pytest.raises(grpc.RpcError) as info:
                list(c.synthesize([("A", long_turn)], conversation_id="long", timeout=1.0))
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            while srv.service.in_flight and time.perf_counter() - began < 30:
                time.sleep(0.05)
            # the server let go within a sentence or two of the deadline, not after 40 sentences
            # (bounded by 3 s on the quiet machine, where a sentence takes about 0.1 s)
            took = time.perf_counter() - began
            assert took < 1.0 + max(2.0, 6 * sentence), (took, sentence)
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
