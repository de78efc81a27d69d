"""The bearer token on every call but health."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from synth_client import SummaryEvent, SynthClient
from tests.server.serving import DIALOG, NO_RETRY, manifest_ids, start, target


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
