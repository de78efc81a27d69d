"""Building and running the gRPC server: the Synth service, the standard health service
(NOT_SERVING until the model is loaded and warmed up, NOT_SERVING again while draining), server
reflection, an optional bearer token on every call, optional TLS, and a SIGTERM drain."""

from __future__ import annotations

import hmac
import logging
import signal
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from synth.engines.base import Engine
from synth_client.v1 import synth_pb2

from .metrics import Metrics
from .service import ServiceConfig, SynthService, decode_request

LOG = logging.getLogger("synth_server")
SERVICE_NAME = synth_pb2.DESCRIPTOR.services_by_name["Synth"].full_name  # "synth.v1.Synth"


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Rejects every call without `authorization: Bearer <token>`, except the standard health
    service: load balancers and Kubernetes probes cannot send a token, and health reveals nothing."""

    def __init__(self, token: str, metrics: Metrics | None = None):
        self._expected = f"Bearer {token}".encode()
        self._metrics = metrics

    def _deny(self, method: str) -> Any:
        """A handler refusing the call, counted in the metrics like every other refused call."""

        def deny(_request: Any, context: grpc.ServicerContext) -> None:
            if self._metrics is not None:
                self._metrics.requests.labels(method, "UNAUTHENTICATED").inc()
                self._metrics.errors.labels("UNAUTHENTICATED").inc()
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

        if method in ("Synthesize", "GetConversation"):
            return grpc.unary_stream_rpc_method_handler(deny)
        return grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation: Callable[..., Any], details: grpc.HandlerCallDetails) -> Any:
        if details.method.startswith("/grpc.health.v1.Health/"):
            return continuation(details)
        given = dict(details.invocation_metadata or ()).get("authorization", "")
        if hmac.compare_digest(given.encode(), self._expected):
            return continuation(details)
        return self._deny(details.method.rsplit("/", 1)[-1])


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
    probe_seconds: float = 2.0  # after a failed write, how often to try the volume again


class SynthServer:
    """A started server; `stop()` drains in-flight requests, `wait()` blocks until stopped."""

    def __init__(self, engine: Engine, config: ServiceConfig, options: ServerOptions):
        self.options = options
        self.metrics = Metrics()
        self.health = health.HealthServicer()
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        interceptors = (
            [BearerTokenInterceptor(options.auth_token, self.metrics)] if options.auth_token else []
        )
        self.service = SynthService(engine, config, self.metrics)
        self.service.on_write_failure = self._write_failed
        self._probing = threading.Lock()
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=config.max_in_flight + 8, thread_name_prefix="synth-rpc"),
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", options.max_message_bytes),
                ("grpc.max_send_message_length", options.max_message_bytes),
            ],
        )
        _add_synth_service(self.service, self.server)
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
        try:
            if options.tls_cert and options.tls_key:
                creds = grpc.ssl_server_credentials(
                    [(options.tls_key.read_bytes(), options.tls_cert.read_bytes())]
                )
                self.port = self.server.add_secure_port(address, creds)
            else:
                self.port = self.server.add_insecure_port(address)
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            raise OSError(f"cannot listen on {address} (the gRPC port): address in use or not permitted")
        self.metrics_port = None
        if options.metrics_port is not None:
            http_host = options.host.strip("[]") or "::"
            try:
                self.metrics_port = self.metrics.serve_http(options.metrics_port, http_host)
            except OSError as exc:
                raise OSError(
                    f"cannot serve metrics on {options.host}:{options.metrics_port} (the metrics port, "
                    f"--metrics-port; -1 turns it off): {exc.strerror or exc}"
                ) from None
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
        in flight finish (up to `grace` seconds) while the port stays open (so probes see
        NOT_SERVING, not a refused connection), then stop."""
        self.service.draining.set()
        self.health.enter_graceful_shutdown()
        grace = self.options.drain_seconds if grace is None else grace
        deadline = time.monotonic() + grace
        while self.service.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        self.server.stop(max(0.0, min(1.0, deadline - time.monotonic()))).wait()
        self.service.engine.close()
        self._stopped.set()

    def _write_failed(self, exc: BaseException) -> None:
        """A conversation could not be written: NOT_SERVING until a probe write succeeds."""
        LOG.error("dataset volume cannot be written: %s; NOT_SERVING until it can", exc)
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        if self._probing.acquire(blocking=False):
            threading.Thread(target=self._probe_until_writable, name="synth-probe", daemon=True).start()

    def _probe_until_writable(self) -> None:
        try:
            while not self.service.draining.is_set():
                try:
                    self.service.writer.probe()
                except OSError:
                    time.sleep(self.options.probe_seconds)
                    continue
                self.service.writable.set()
                for name in ("", SERVICE_NAME):
                    self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
                LOG.info("dataset volume writable again: SERVING")
                return
        finally:
            self._probing.release()

    def wait(self) -> None:
        self._stopped.wait()


def _add_synth_service(service: SynthService, server: grpc.Server) -> None:
    """The generated registration, with a request decoder that turns an undecodable request
    (a text field that is not UTF-8) into INVALID_ARGUMENT instead of INTERNAL."""
    handlers = {
        "ListVoices": grpc.unary_unary_rpc_method_handler(
            service.ListVoices,
            request_deserializer=synth_pb2.ListVoicesRequest.FromString,
            response_serializer=synth_pb2.ListVoicesResponse.SerializeToString,
        ),
        "Synthesize": grpc.unary_stream_rpc_method_handler(
            service.Synthesize,
            request_deserializer=decode_request,
            response_serializer=synth_pb2.SynthesizeResponse.SerializeToString,
        ),
        "GetConversation": grpc.unary_stream_rpc_method_handler(
            service.GetConversation,
            request_deserializer=synth_pb2.GetConversationRequest.FromString,
            response_serializer=synth_pb2.SynthesizeResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))


def serve_forever(server: SynthServer) -> None:
    """Run until SIGTERM or SIGINT, then drain."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    LOG.info("draining %d request(s) in flight", server.service.in_flight)
    server.stop()
