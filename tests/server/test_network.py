"""Where the server listens: loopback unless told, a warning when exposed, a port in use named."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from synth_client import SynthClient
from tests.helpers import SYNTH, free_port
from tests.server.serving import served, wait_serving


def test_exposure_warnings_name_what_is_open():
    from synth_server.network import exposure_warnings, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("[::1]") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("[::]")
    assert exposure_warnings("127.0.0.1", 1, token=False, tls=False) == []
    both = exposure_warnings("[::]", 50051, token=False, tls=False)
    assert len(both) == 2 and "no --auth-token" in both[0] and "without TLS" in both[1]
    assert [w for w in exposure_warnings("0.0.0.0", 1, token=True, tls=False) if "bearer token" in w]
    assert exposure_warnings("0.0.0.0", 1, token=True, tls=True) == []


def _listening(port: int) -> set[str]:
    """The local addresses of the sockets listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for name in ("tcp", "tcp6"):
        path = Path(f"/proc/net/{name}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, state = fields[1], fields[3]
            host, hex_port = address.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(_hex_address(host))
    return found


def _hex_address(host: str) -> str:
    import ipaddress

    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    address = ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))
    return str(address.ipv4_mapped or address)  # a v4-mapped socket listens on the IPv4 address


@pytest.mark.faults
def test_serve_listens_on_loopback_unless_told_and_warns_when_exposed(tmp_path):
    """Issue item 10: `synth serve` alone listens on loopback only (gRPC and metrics); given
    --host beyond loopback, it warns at start about a missing token and missing TLS."""
    port, metrics = free_port(), free_port()
    log = tmp_path / "plain.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [
                SYNTH,
                "serve",
                "--port",
                str(port),
                "--metrics-port",
                str(metrics),
                "--out",
                str(tmp_path / "a"),
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_serving(port, proc, log)
        assert _listening(port) == {"127.0.0.1"} and _listening(metrics) == {"127.0.0.1"}
        assert "beyond loopback" not in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    with served(tmp_path / "b", host="0.0.0.0") as srv:
        assert _listening(srv.port) and _listening(srv.port) <= {"0.0.0.0", "::"}  # every interface
        text = srv.log()
        assert "beyond loopback" in text and "--auth-token" in text and "TLS" in text, text
    with served(tmp_path / "c", "--auth-token", "s3cret", host="0.0.0.0") as srv:
        text = srv.log()
        assert "without TLS" in text and "no --auth-token" not in text, text
        assert "s3cret" not in text


@pytest.mark.faults
def test_a_second_server_on_a_port_in_use_fails_naming_it(tmp_path):
    """Issue item 11: gRPC Python sets SO_REUSEPORT, so a second `synth serve` on a port in use
    started and took half of the clients into its own folder. Now it exits at once with "address
    in use" naming the port, and every conversation goes to the first server's folder."""
    with served(tmp_path / "first") as srv:
        res = subprocess.run(
            [SYNTH, "serve", "--host", "127.0.0.1", "--port", str(srv.port), "--out", str(tmp_path / "second"),
             "--metrics-port", "-1"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert res.returncode == 1, res.stdout + res.stderr
        assert "address in use" in res.stderr and str(srv.port) in res.stderr, res.stderr
        for i in range(6):  # a fresh connection each: none reaches anything but the first server
            with SynthClient(srv.target) as c:
                list(c.synthesize([("A", f"Call {i}.")], conversation_id=f"one_port_{i}"))
    listed = (tmp_path / "first" / "manifest.jsonl").read_text().splitlines()
    assert len(listed) == 6
    second = tmp_path / "second" / "manifest.jsonl"
    assert not second.exists() or second.read_text() == ""
