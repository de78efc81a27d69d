"""Requests into dialogs: each bad request gets its status code and a message naming the field or
turn, and nothing is written."""

from __future__ import annotations

import grpc
import pytest

from synth_client import SynthClient
from synth_client.v1 import synth_pb2 as pb
from tests.server.serving import DIALOG, NO_RETRY, manifest_ids, target


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
    with SynthClient(target(server)) as c:
        list(c.synthesize(DIALOG, conversation_id="srv_one"))  # the one a request may not make again
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
