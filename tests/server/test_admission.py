"""Admission: Synthesize calls and GetConversation streams past their limits are refused at once,
and served with the client's backoff."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from synth_client import Backoff, SummaryEvent, SynthClient
from tests.server.serving import DIALOG, LONG, NO_RETRY, log_lines, long_dialog, served, start, target


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


@pytest.mark.faults
def test_stream_limits_refuse_then_serve_every_reader(tmp_path):
    """--max-streams 2 and eight readers at once that do read: the ones past the limit are told
    RESOURCE_EXHAUSTED and the client's own backoff brings every one of them its conversation."""
    out = tmp_path / "ds"
    with served(out, "--max-streams", "2") as srv:
        with SynthClient(srv.target) as c:
            list(c.synthesize(long_dialog(6, 2), conversation_id="shared"))
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
        refused = log_lines(srv.log(), "GetConversation", "RESOURCE_EXHAUSTED")
    assert all(isinstance(r, list) and isinstance(r[-1], SummaryEvent) for r in results.values()), results
    assert len(results) == 8
    print(f"{len(refused)} GetConversation call(s) refused past --max-streams 2, all 8 readers served")
