"""The server as built and run: TLS, health (NOT_SERVING until warmed up), reflection, metrics, a
drain, and the deployment that refuses to run open."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from synth_client import SynthClient
from synth_server import ServerOptions, ServiceConfig, SynthServer
from tests.helpers import REPO, SYNTH, free_port
from tests.server.serving import DIALOG, NO_RETRY, start, target


def test_tls(engine, tmp_path):
    import subprocess

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    srv = start(engine, tmp_path / "ds", tls_cert=cert, tls_key=key)
    try:
        with SynthClient(f"localhost:{srv.port}", root_certificates=cert.read_bytes()) as c:
            assert len(c.list_voices()) == 18
        from tests.helpers import run_cli

        health = run_cli("health", "--server", f"localhost:{srv.port}", "--root-cert", str(cert))
        assert health.returncode == 0 and "SERVING" in health.stdout
        with SynthClient(f"localhost:{srv.port}", backoff=NO_RETRY) as plain:
            with pytest.raises(grpc.RpcError):
                plain.list_voices(timeout=5)
    finally:
        srv.stop(grace=0)


def test_health_reflection_and_metrics(engine, tmp_path):
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    config = ServiceConfig(out=tmp_path / "ds")
    options = ServerOptions(host="127.0.0.1", port=0, metrics_port=0, reflection=True)  # off unless asked
    srv = SynthServer(engine, config, options)
    channel = grpc.insecure_channel(target(srv))
    health = health_pb2_grpc.HealthStub(channel)
    srv.listen()  # accepting calls, model not warmed up yet
    check = lambda: health.Check(health_pb2.HealthCheckRequest(service="synth.v1.Synth"), timeout=5).status
    assert check() == health_pb2.HealthCheckResponse.NOT_SERVING
    srv.start()
    assert check() == health_pb2.HealthCheckResponse.SERVING
    services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert "synth.v1.Synth" in services and "grpc.health.v1.Health" in services
    with SynthClient(target(srv)) as c:
        list(c.synthesize(DIALOG, conversation_id="metered"))
    text = urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics", timeout=10).read().decode()
    assert "synth_turns_total 3.0" in text
    assert 'synth_requests_total{code="OK",method="Synthesize"} 1.0' in text
    for name in (
        "synth_audio_seconds_total",
        "synth_synthesis_seconds_total",
        "synth_queue_depth",
        "synth_requests_in_flight",
        "synth_errors_total",
    ):
        assert name in text
    srv.service.admission.draining.set()  # what stop() does first
    with SynthClient(target(srv), backoff=NO_RETRY) as c:
        with pytest.raises(grpc.RpcError) as err:
            list(c.synthesize(DIALOG))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    srv.stop(grace=0)
    channel.close()


@pytest.mark.faults
def test_deploy_manifest_and_image_refuse_to_run_open(tmp_path):
    """Issue item 10: the Kubernetes example says --host explicitly and does not start without
    its auth secret (the secret is not optional, and an empty one is refused: the container's
    command run here with the manifest's environment minus the secret exits at once, saying
    why); the Dockerfile's command says --host too."""
    docs = list(yaml.safe_load_all((REPO / "deploy/synth.yaml").read_text()))
    deployment = next(d for d in docs if d and d.get("kind") == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    command = container["command"] + container.get("args", [])
    assert command[:2] == ["synth", "serve"] and "--host" in command
    env = {e["name"]: e for e in container["env"]}
    ref = env["SYNTH_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref.get("optional", False) is False
    plain = {k: str(v["value"]) for k, v in env.items() if "value" in v}
    plain.update(SYNTH_OUT=str(tmp_path / "ds"), SYNTH_DEVICE="cpu", SYNTH_PORT=str(free_port()))
    base = {k: v for k, v in os.environ.items() if not k.startswith("SYNTH_")}
    for token in (None, "", "   "):
        extra = {} if token is None else {"SYNTH_AUTH_TOKEN": token}
        began = time.monotonic()
        res = subprocess.run(
            [SYNTH, *command[1:]], env={**base, **plain, **extra}, capture_output=True, text=True, timeout=120
        )
        assert res.returncode != 0, res.stdout + res.stderr
        assert "--require-auth" in res.stderr and "refusing to serve" in res.stderr, res.stderr
        assert time.monotonic() - began < 30  # before the model is loaded
    dockerfile = (REPO / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD\s+(\[.*\])\s*$", dockerfile, re.M).group(1))
    assert cmd[:2] == ["synth", "serve"] and "--host" in cmd
    assert not re.search(r"SYNTH_HOST=", dockerfile)  # the command says it, not a hidden default
