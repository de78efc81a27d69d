"""Where the server listens, diagnosed: whether an address is loopback only, what is open to
others beyond it, and why a port could not be bound (gRPC says only 'Failed to bind')."""

from __future__ import annotations

import errno
import ipaddress
import socket

LOOPBACK = "127.0.0.1"


def is_loopback(host: str) -> bool:
    """Whether every address `host` stands for is a loopback one (127.0.0.0/8, ::1)."""
    name = host.strip("[]")
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def exposure_warnings(host: str, port: int, token: bool, tls: bool) -> list[str]:
    """What is open to others when the server listens beyond loopback."""
    if is_loopback(host):
        return []
    where = f"listening on {host}:{port}, beyond loopback"
    out = []
    if not token:
        out.append(
            f"{where}, with no --auth-token: anyone who can reach this port can synthesize into the "
            "dataset and read every conversation in it"
        )
    if not tls:
        out.append(
            f"{where}, without TLS (--tls-cert/--tls-key): requests, audio"
            + (" and the bearer token" if token else "")
            + " cross the network in clear text"
        )
    return out


def bind_error(host: str, port: int) -> str:
    """Why gRPC could not bind (it says only 'Failed to bind'): the errno of a plain bind."""
    name = host.strip("[]")
    try:
        infos = socket.getaddrinfo(name or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return f"cannot resolve {host!r} ({exc})"
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return f"address in use: another process is listening on port {port}"
                return exc.strerror or str(exc)
    return "address in use or not permitted"
