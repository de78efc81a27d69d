"""The channel to a server, the same for the sync and asyncio clients and the health check:
TLS or plain, round robin over a name's replicas, reconnecting soon after a replica is back."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal, Union, overload

import grpc
import grpc.aio

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
    # With a `dns:///name:port` target that resolves to several replicas (a Kubernetes headless
    # Service), spread calls over all of them instead of pinning to the first address.
    ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})),
    # A server that went away is tried again every 5 s at most (gRPC's default grows to 120 s),
    # so a restarted replica gets calls again soon after it is back.
    ("grpc.max_reconnect_backoff_ms", 5000),
]
PathLike = Union[str, "os.PathLike[str]"]


def read_ca(tls_ca: PathLike | None, root_certificates: bytes | None = None) -> bytes | None:
    """The PEM bytes of the CA(s) to trust: `tls_ca` (a file) or `root_certificates` (bytes)."""
    if tls_ca is None:
        return root_certificates
    try:
        return Path(tls_ca).read_bytes()
    except OSError as exc:
        raise OSError(f"tls_ca {str(tls_ca)!r}: cannot read the CA file ({exc.strerror or exc})") from None


@overload
def channel_for(
    target: str,
    tls: bool = ...,
    root_certificates: bytes | None = ...,
    tls_ca: PathLike | None = ...,
    *,
    aio: Literal[False] = ...,
) -> grpc.Channel:
    """The blocking channel (`aio` left False), for the sync client and the health check."""


@overload
def channel_for(
    target: str,
    tls: bool = ...,
    root_certificates: bytes | None = ...,
    tls_ca: PathLike | None = ...,
    *,
    aio: Literal[True],
) -> grpc.aio.Channel:
    """The asyncio channel (`aio=True`), for the asyncio client."""


def channel_for(
    target: str,
    tls: bool = False,
    root_certificates: bytes | None = None,
    tls_ca: PathLike | None = None,
    *,
    aio: bool = False,
) -> Any:
    """A channel to `target` (a grpc.aio one when `aio`): TLS when `tls`, `root_certificates`
    (PEM bytes) or `tls_ca` (a PEM file of a private CA) is given (no CA: the system's), plain
    otherwise."""
    kind: Any = grpc.aio if aio else grpc
    roots = read_ca(tls_ca, root_certificates)
    if tls or roots:
        return kind.secure_channel(target, grpc.ssl_channel_credentials(roots), CHANNEL_OPTIONS)
    return kind.insecure_channel(target, CHANNEL_OPTIONS)
