"""Channels that trust a private CA: the client, `synth health` and `synth batch`."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from synth.workflows.validate import validate_dataset
from synth_client import SynthClient
from tests.helpers import run_cli, write_jsonl
from tests.server.serving import served


def _private_ca(folder: Path) -> tuple[Path, Path, Path]:
    """A CA of our own and a server certificate for localhost signed by it."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "1", "-subj", "/CN=synth test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")  # fmt: skip
    (folder / "san.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "1", "-extfile", "san.cnf")  # fmt: skip
    return folder / "ca.pem", folder / "server.pem", folder / "server.key"


@pytest.mark.faults
def test_batch_health_and_client_trust_a_private_ca(tmp_path):
    """Issue item 10: a server whose certificate a private CA signed. `synth batch --tls-ca`,
    `synth health --tls-ca` and SynthClient(tls_ca=...) reach it; `synth batch --tls` with the
    system's CAs does not, and says the server is unreachable (fast, not after every deadline)."""
    ca, cert, key = _private_ca(tmp_path)
    dialogs = write_jsonl(
        tmp_path / "d.jsonl", [{"conversation_id": "tls1", "turns": ["Secure hello.", "Hi."]}]
    )
    with served(tmp_path / "ds", "--tls-cert", str(cert), "--tls-key", str(key), tls_ca=ca) as srv:
        target = f"localhost:{srv.port}"
        health = run_cli("health", "--server", target, "--tls-ca", str(ca))
        assert health.returncode == 0 and "SERVING" in health.stdout, health.stderr
        with SynthClient(target, tls_ca=ca) as c:
            assert len(c.list_voices()) > 0
        res = run_cli("batch", "--server", target, "--tls-ca", str(ca), "--dialogs", str(dialogs), "--quiet",
                      "--out", str(tmp_path / "copy"), "--failures", str(tmp_path / "f.jsonl"))  # fmt: skip
        assert res.returncode == 0, res.stdout + res.stderr
        began = time.monotonic()
        bad = run_cli("batch", "--server", target, "--tls", "--dialogs", str(dialogs), "--quiet",
                      "--unreachable-timeout", "3", "--failures", str(tmp_path / "g.jsonl"))  # fmt: skip
        assert bad.returncode == 3 and "no server reachable" in bad.stdout, bad.stdout + bad.stderr
        assert time.monotonic() - began < 30
    assert validate_dataset(tmp_path / "copy").ok
