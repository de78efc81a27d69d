"""The standard gRPC health check (grpc.health.v1.Health/Check) with grpcio alone: the request
and reply are two one-field messages, encoded here so the light client needs no
grpcio-health-checking."""

from __future__ import annotations

from .channel import PathLike, channel_for

STATUSES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
SERVICE = "synth.v1.Synth"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _request(service: str) -> bytes:
    data = service.encode("utf-8")
    return (b"\x0a" + _varint(len(data)) + data) if data else b""


def _status(reply: bytes) -> str:
    """HealthCheckResponse: field 1 (status) as a varint; absent means UNKNOWN."""
    if not reply:
        return STATUSES[0]
    if reply[0] != 0x08:
        raise ValueError(f"unexpected health reply {reply[:8]!r}")
    value, shift = 0, 0
    for byte in reply[1:]:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return STATUSES.get(value, str(value))


def check_health(
    target: str,
    service: str = SERVICE,
    timeout: float = 5.0,
    tls: bool = False,
    root_certificates: bytes | None = None,
    *,
    tls_ca: PathLike | None = None,
) -> str:
    """'SERVING', 'NOT_SERVING', ... for `service` ('' for the whole server); raises
    grpc.RpcError when the server cannot be reached."""
    with channel_for(target, tls, root_certificates, tls_ca) as channel:
        call = channel.unary_unary(
            "/grpc.health.v1.Health/Check", request_serializer=None, response_deserializer=None
        )
        return _status(call(_request(service), timeout=timeout))
