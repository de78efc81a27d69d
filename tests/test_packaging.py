"""The distributions as a user installs them, each in a fresh virtual environment: the main wheel
built by `python -m build` generates and validates a dataset on its own, and the light client
(`pip install ./client`) streams a conversation from a running server without numpy."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.helpers import REPO

# builds the distributions and installs them into new environments (their dependencies come
# from the package registry)
pytestmark = [pytest.mark.packaging, pytest.mark.network]

CLIENT_SCRIPT = """
import importlib.util, sys
from synth_client import SummaryEvent, SynthClient, TurnEvent, check_health

assert importlib.util.find_spec("numpy") is None, "numpy is installed beside the light client"
assert check_health(sys.argv[1]) == "SERVING"
with SynthClient(sys.argv[1]) as client:
    events = list(client.synthesize([("A", "Hello from the light client."), ("B", "Hi.")],
                                    stream_only=True))
turns = [e for e in events if isinstance(e, TurnEvent)]
assert len(turns) == 2 and all(t.wav[:4] == b"RIFF" for t in turns)
assert isinstance(events[-1], SummaryEvent)
print("streamed", len(turns), "turns")
"""


def _venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True).create(path)
    return path / "bin" / "python"


def _run(*cmd: str | Path, cwd: Path = REPO, timeout: float = 900) -> str:
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd}: {res.stdout[-2000:]}\n{res.stderr[-4000:]}"
    return res.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--outdir", out, REPO)
    return out


@pytest.mark.slow
def test_sdist_carries_what_a_build_needs(dist):
    import tarfile

    (sdist,) = dist.glob("synth-*.tar.gz")
    names = tarfile.open(sdist).getnames()
    for part in (
        "proto/synth/v1/synth.proto",
        "client/synth_client/v1/synth_pb2.py",
        "server/synth_server/service.py",
        "synth/cli/__init__.py",
        "docs/dataset-format.md",
    ):
        assert any(n.endswith(part) for n in names), part


@pytest.mark.slow
def test_the_wheel_alone_generates_and_validates(dist, tmp_path):
    (wheel,) = dist.glob("synth-*.whl")
    python = _venv(tmp_path / "env")
    _run(python, "-m", "pip", "install", "--quiet", wheel)
    synth = python.with_name("synth")
    out = tmp_path / "dataset"
    _run(
        synth,
        "generate",
        "--dialogs",
        REPO / "examples" / "dialogs.jsonl",
        "--out",
        out,
        "--quiet",
        cwd=tmp_path,
    )
    assert "OK" in _run(synth, "validate", out, cwd=tmp_path)
    # the service and the client ship inside the main wheel, importable by their folder names
    _run(python, "-c", "import synth_server, synth_client.v1.synth_pb2_grpc", cwd=tmp_path)


@pytest.mark.slow
def test_the_light_client_alone_streams_from_a_server(engine, tmp_path):
    from synth_server import ServerOptions, ServiceConfig, SynthServer

    python = _venv(tmp_path / "env")
    _run(python, "-m", "pip", "install", "--quiet", REPO / "client")
    srv = SynthServer(
        engine, ServiceConfig(out=tmp_path / "ds"), ServerOptions(host="127.0.0.1", port=0)
    ).start()
    try:
        out = _run(python, "-c", CLIENT_SCRIPT, f"127.0.0.1:{srv.port}", cwd=tmp_path)
    finally:
        srv.stop(grace=0)
    assert "streamed 2 turns" in out
