"""Servers for the service's tests: in this process (`start`, the module-wide `server` fixture)
or as `synth serve` child processes (`served`), and what the tests send them."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from synth_client import Backoff, check_health
from synth_server import ServerOptions, ServiceConfig, SynthServer
from tests.helpers import SYNTH, free_port

DIALOG = [
    ("A", "Good afternoon, is this seat taken?"),
    ("B", "No, please sit down."),
    ("A", "Thank you. The train is very full today."),
]
LONG = [
    ("A" if i % 2 == 0 else "B", f"This is turn number {i} of a long conversation about trains.")
    for i in range(30)
]
SENTENCE = "We walked along the river for an hour, and then it started to rain on us."
NO_RETRY = Backoff(attempts=1)


def start(engine, out: Path, **options) -> SynthServer:
    """A server in this process on a free loopback port, started (`max_in_flight` and the
    ServerOptions as keywords)."""
    max_in_flight = options.pop("max_in_flight", ServiceConfig.max_in_flight)
    config = ServiceConfig(out=out, max_in_flight=max_in_flight)
    return SynthServer(engine, config, ServerOptions(host="127.0.0.1", port=0, **options)).start()


@pytest.fixture(scope="module")
def server(engine, tmp_path_factory):
    srv = start(engine, tmp_path_factory.mktemp("served") / "dataset", metrics_port=0)
    yield srv
    srv.stop(grace=0)


def target(srv: SynthServer) -> str:
    return f"127.0.0.1:{srv.port}"


def manifest_ids(root: Path) -> list[str]:
    path = root / "manifest.jsonl"
    return [json.loads(l)["conversation_id"] for l in path.read_text().splitlines()] if path.exists() else []


def long_dialog(n: int = 4, sentences: int = 3) -> list[tuple[str, str]]:
    text = " ".join(f"{SENTENCE} This is part {k} of it." for k in range(sentences))
    return [("AB"[i % 2], text) for i in range(n)]


def log_lines(text: str, method: str, code: str | None = None) -> list[str]:
    lines = [line for line in text.splitlines() if f"method={method} " in line]
    return [line for line in lines if code is None or f" code={code} " in line]


@dataclass
class Served:
    proc: subprocess.Popen
    port: int
    log_path: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_serving(port: int, proc: subprocess.Popen, log: Path, tls_ca: Path | None = None) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"synth serve exited with {proc.returncode}: {log.read_text()}")
        try:
            if check_health(
                f"localhost:{port}" if tls_ca else f"127.0.0.1:{port}", timeout=1, tls_ca=tls_ca
            ) == ("SERVING"):
                return
        except grpc.RpcError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"synth serve did not become ready: {log.read_text()}")


@contextlib.contextmanager
def served(
    out: Path,
    *extra: str,
    host: str | None = "127.0.0.1",
    port: int | None = None,
    tls_ca: Path | None = None,
) -> Iterator[Served]:
    """A `synth serve` child process, its output in a file beside `out` (read at any time)."""
    port = port or free_port()
    log = out.parent / f"serve-{port}.log"
    hosting = ["--host", host] if host else []
    cmd = [SYNTH, "serve", *hosting, "--port", str(port), "--out", str(out), "--metrics-port", "-1", *extra]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, text=True)
    try:
        wait_serving(port, proc, log, tls_ca)
        yield Served(proc, port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
