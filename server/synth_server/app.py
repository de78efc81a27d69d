"""Building and running the gRPC server: the Synth service, the standard health service
(NOT_SERVING until the model is loaded and warmed up, NOT_SERVING again while draining), server
reflection, an optional bearer token on every call, optional TLS, and a SIGTERM drain."""

from __future__ import annotations

import hmac
import logging
import signal
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from synth.engines.base import Engine
from synth_client.v1 import synth_pb2, synth_pb2_grpc

from .metrics import Metrics
from .service import ServiceConfig, SynthService

LOG = logging.getLogger("synth_server")
SERVICE_NAME = synth_pb2.DESCRIPTOR.services_by_name["Synth"].full_name  # "synth.v1.Synth"


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Rejects every call without `authorization: Bearer <token>`, except the standard health
    service: load balancers and Kubernetes probes cannot send a token, and health reveals nothing."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

        def deny(_request: Any, context: grpc.ServicerContext) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)
        self._deny_stream = grpc.unary_stream_rpc_method_handler(deny)

    def intercept_service(self, continuation: Callable[..., Any], details: grpc.HandlerCallDetails) -> Any:
        if details.method.startswith("/grpc.health.v1.Health/"):
            return continuation(details)
        given = dict(details.invocation_metadata or ()).get("authorization", "")
        if hmac.compare_digest(given.encode(), self._expected):
            return continuation(details)
        return self._deny_stream if details.method.endswith("/Synthesize") else self._deny


@dataclass
class ServerOptions:
    host: str = "[::]"
    port: int = 50051
    auth_token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    metrics_port: int | None = None  # None: no metrics endpoint; 0: any free port
    max_message_bytes: int = 4 * 1024 * 1024
    drain_seconds: float = 30.0


class SynthServer:
    """A started server; `stop()` drains in-flight requests, `wait()` blocks until stopped."""

    def __init__(self, engine: Engine, config: ServiceConfig, options: ServerOptions):
        self.options = options
        self.metrics = Metrics()
        self.health = health.HealthServicer()
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        interceptors = [BearerTokenInterceptor(options.auth_token)] if options.auth_token else []
        self.service = SynthService(engine, config, self.metrics)
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=config.max_in_flight + 8, thread_name_prefix="synth-rpc"),
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", options.max_message_bytes),
                ("grpc.max_send_message_length", options.max_message_bytes),
            ],
        )
        synth_pb2_grpc.add_SynthServicer_to_server(self.service, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (
                SERVICE_NAME,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            self.server,
        )
        address = f"{options.host}:{options.port}"
        if options.tls_cert and options.tls_key:
            creds = grpc.ssl_server_credentials(
                [(options.tls_key.read_bytes(), options.tls_cert.read_bytes())]
            )
            self.port = self.server.add_secure_port(address, creds)
        else:
            self.port = self.server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot listen on {address}")
        self.metrics_port = (
            self.metrics.serve_http(options.metrics_port) if options.metrics_port is not None else None
        )
        self._stopped = threading.Event()
        self._listening = False

    def listen(self) -> SynthServer:
        """Accept calls; health says NOT_SERVING until `start()` has warmed the model up."""
        if not self._listening:
            self.server.start()
            self._listening = True
        return self

    def start(self, warm_up: bool = True) -> SynthServer:
        self.listen()
        if warm_up:
            self.service.warm_up()
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        LOG.info("serving on port %s", self.port)
        return self

    def stop(self, grace: float | None = None) -> None:
        """Drain: report NOT_SERVING, refuse new Synthesize calls with UNAVAILABLE, let the calls
        in flight finish (up to `grace` seconds), then stop."""
        self.service.draining.set()
        self.health.enter_graceful_shutdown()
        grace = self.options.drain_seconds if grace is None else grace
        self.server.stop(grace).wait()
        self.service.engine.close()
        self._stopped.set()

    def wait(self) -> None:
        self._stopped.wait()


def serve_forever(server: SynthServer) -> None:
    """Run until SIGTERM or SIGINT, then drain."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    LOG.info("draining %d request(s) in flight", server.service.in_flight)
    server.stop()
