"""`synth serve --threads`: the engine's ONNX Runtime threads, as `generate --threads` sets a
worker's (a server has the machine by default; several on one machine divide the cores)."""

from __future__ import annotations

import psutil

from synth_client import SynthClient
from tests.helpers import run_cli
from tests.server.serving import DIALOG, NO_RETRY, served


def test_serve_runs_its_engine_on_the_threads_asked(tmp_path):
    with served(tmp_path / "ds", "--threads", "1") as srv:
        with SynthClient(srv.target, backoff=NO_RETRY) as client:
            events = list(client.synthesize(DIALOG, conversation_id="threads_one"))
        assert events and events[-1].conversation_id == "threads_one"
        # one intra-op thread: ONNX Runtime starts no thread pool for the engine's session
        one = psutil.Process(srv.proc.pid).num_threads()
    with served(tmp_path / "ds2", "--threads", "4") as srv:
        with SynthClient(srv.target, backoff=NO_RETRY) as client:
            list(client.synthesize(DIALOG, conversation_id="threads_many"))
        many = psutil.Process(srv.proc.pid).num_threads()
    assert many >= one + 2, (one, many)  # a pool of 3 more threads (gRPC's own vary by one or so)


def test_serve_refuses_a_thread_count_under_one(tmp_path):
    res = run_cli(
        "serve", "--out", str(tmp_path / "ds"), "--threads", "0", "--metrics-port", "-1", timeout=120
    )
    assert res.returncode == 2 and "--threads" in res.stderr, res.stderr
