"""Building and running the gRPC server: the Synth service, the standard health service
(NOT_SERVING until the model is loaded and warmed up, NOT_SERVING again while draining), server
reflection when asked (--reflection), an optional bearer token on every call, optional TLS, and
a SIGTERM drain.

Each kind of call has its own threads: Synthesize, GetConversation and reflection streams can
each use up only their own pool, so Health and ListVoices always find a free thread. The port is
bound without SO_REUSEPORT (gRPC Python's default turns it on, which lets a second server start
on a port in use and take half of its clients). Listens on loopback unless told otherwise."""

from __future__ import annotations

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
from grpc_reflection.v1alpha import reflection, reflection_pb2

from synth.engines.base import Engine
from synth.errors import ConfigError
from synth.options import option
from synth_client.v1 import synth_pb2

from .auth import BearerTokenInterceptor
from .logs import log_event
from .metrics import Metrics
from .network import LOOPBACK, bind_error, exposure_warnings
from .service import ServiceConfig, SynthService, decode_request

SERVICE_NAME = synth_pb2.DESCRIPTOR.services_by_name["Synth"].full_name  # "synth.v1.Synth"
RPC_WORKERS = 16  # Health, ListVoices and refusals (auth, limits): short unary calls only
SPARE_WORKERS = 8  # beyond a pool's admission limit, to refuse the calls past it at once
REFLECTION_WORKERS = 4


def _port_or_off(text: str | int) -> int | None:
    port = int(text)
    return None if port < 0 else port


def _text_or_none(text: str | None) -> str | None:
    return text or None


@dataclass
class ServerOptions:
    """Where and how the server listens. Declared as options (synth.options): `synth serve` builds
    its flags and their SYNTH_<NAME> variables from these fields."""

    host: str = option(
        LOOPBACK,
        env="HOST",
        help="address to listen on: loopback only unless told ('[::]' for every interface, which "
        "warns unless --auth-token and TLS are set)",
    )
    port: int = option(50051, env="PORT", help="gRPC port")
    auth_token: str | None = option(
        None,
        env="AUTH_TOKEN",
        parse=_text_or_none,
        help="require 'authorization: Bearer TOKEN' on every call (default: off)",
    )
    require_auth: bool = option(
        False,
        env="REQUIRE_AUTH",
        help="refuse to start without a non-empty --auth-token (SYNTH_REQUIRE_AUTH=1; for "
        "deployments whose token comes from a secret)",
    )
    tls_cert: Path | None = option(None, env="TLS_CERT", parse=Path, help="PEM certificate chain (TLS on)")
    tls_key: Path | None = option(None, env="TLS_KEY", parse=Path, help="PEM private key")
    # None: no metrics endpoint; 0: any free port (`synth serve` defaults to 9090, -1: off)
    metrics_port: int | None = option(
        None, env="METRICS_PORT", parse=_port_or_off, help="Prometheus /metrics port (-1: off)"
    )
    max_message_bytes: int = 4 * 1024 * 1024
    drain_seconds: float = option(30.0, env="DRAIN_SECONDS", help="on SIGTERM, time given to calls in flight")
    reflection: bool = option(
        False,
        env="REFLECTION",
        help="serve gRPC server reflection (grpcurl, grpcui list the services without the .proto); "
        "off by default: it tells any caller what the server offers",
    )
    probe_seconds: float = 2.0  # after a failed write, how often to try the volume again

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("tls_cert", "--tls-cert and --tls-key go together")
        if self.require_auth and not (self.auth_token or "").strip():
            raise ConfigError(
                "auth_token",
                "--require-auth is set but no token was given (SYNTH_AUTH_TOKEN is empty or unset): "
                "refusing to serve without one",
            )


class SynthServer:
    """A started server; `stop()` drains in-flight requests, `wait()` blocks until stopped."""

    def __init__(self, engine: Engine, config: ServiceConfig, options: ServerOptions):
        self.options = options
        self.metrics = Metrics()
        self.health = health.HealthServicer()
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        self.service = SynthService(engine, config, self.metrics)
        self.service.on_write_failure = self._write_failed
        self.pools = _pools(config)
        self.server = grpc.server(
            self.pools["rpc"],
            interceptors=[BearerTokenInterceptor(options.auth_token, self.metrics)]
            if options.auth_token
            else [],
            options=[
                ("grpc.max_receive_message_length", options.max_message_bytes),
                ("grpc.max_send_message_length", options.max_message_bytes),
                ("grpc.so_reuseport", 0),  # a port in use is an error, never shared
            ],
        )
        _add_synth_service(self.service, self.server, self.pools["synthesize"], self.pools["stream"])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        if options.reflection:
            _add_reflection(self.server, self.pools["reflection"])
        self.port = self._bind()
        self.warnings = exposure_warnings(
            options.host, self.port, bool(options.auth_token), bool(options.tls_cert and options.tls_key)
        )
        self.metrics_port = self._serve_metrics()
        self._stopped = threading.Event()
        self._listening = False

    def _bind(self) -> int:
        """The gRPC port bound (TLS when given); an OSError saying why not, everything let go."""
        options = self.options
        address = f"{options.host}:{options.port}"
        try:
            if options.tls_cert and options.tls_key:
                creds = grpc.ssl_server_credentials(
                    [(options.tls_key.read_bytes(), options.tls_cert.read_bytes())]
                )
                port = self.server.add_secure_port(address, creds)
            else:
                port = self.server.add_insecure_port(address)
        except RuntimeError:
            port = 0
        if port == 0:
            self.service.close()
            self._close_pools()
            raise OSError(
                f"cannot listen on {address} (the gRPC port, --port): {bind_error(options.host, options.port)}"
            )
        return port

    def _serve_metrics(self) -> int | None:
        """The metrics endpoint's port (None: off); an OSError saying why not, everything let go."""
        options = self.options
        if options.metrics_port is None:
            return None
        http_host = options.host.strip("[]") or "::"
        try:
            return self.metrics.serve_http(options.metrics_port, http_host)
        except OSError as exc:
            self.server.stop(None)
            self.service.close()
            self._close_pools()
            raise OSError(
                f"cannot serve metrics on {options.host}:{options.metrics_port} (the metrics port, "
                f"--metrics-port; -1 turns it off): {exc.strerror or exc}"
            ) from None

    def listen(self) -> SynthServer:
        """Accept calls; health says NOT_SERVING until `start()` has warmed the model up."""
        if not self._listening:
            self.server.start()
            self._listening = True
        return self

    def start(self, warm_up: bool = True) -> SynthServer:
        as_json = self.service.config.log_json
        for warning in self.warnings:  # said before the first call can arrive
            log_event(logging.WARNING, "exposed", as_json, warning=warning)
        self.listen()
        if warm_up:
            self.service.warm_up()
        self._set_health(health_pb2.HealthCheckResponse.SERVING)
        log_event(logging.INFO, "serving", as_json, host=self.options.host, port=self.port)
        return self

    def stop(self, grace: float | None = None) -> None:
        """Drain: report NOT_SERVING, refuse new Synthesize calls with UNAVAILABLE, let the calls
        in flight finish (up to `grace` seconds) while the port stays open (so probes see
        NOT_SERVING, not a refused connection), then stop."""
        self.service.admission.draining.set()
        self.health.enter_graceful_shutdown()
        grace = self.options.drain_seconds if grace is None else grace
        deadline = time.monotonic() + grace
        while self.service.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        self.server.stop(max(0.0, min(1.0, deadline - time.monotonic()))).wait()
        self.service.close()
        self._close_pools()
        self._stopped.set()

    def wait(self) -> None:
        self._stopped.wait()

    def _set_health(self, status: Any) -> None:
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)

    def _close_pools(self) -> None:
        for pool in self.pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

    def _write_failed(self, exc: BaseException) -> None:
        """A conversation could not be written: NOT_SERVING until the volume has room for one
        again (statvfs) and a probe write succeeds (synth_server.volume)."""
        as_json = self.service.config.log_json
        log_event(logging.ERROR, "volume not writable: NOT_SERVING until it is", as_json, error=exc)
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)

        def writable() -> None:
            self._set_health(health_pb2.HealthCheckResponse.SERVING)
            log_event(logging.INFO, "volume writable again: SERVING", as_json)

        self.service.volume.watch(self.options.probe_seconds, self.service.admission.draining, writable)


def _pools(config: ServiceConfig) -> dict[str, futures.ThreadPoolExecutor]:
    """A thread pool per kind of call (see the module's docstring)."""
    return {
        "rpc": futures.ThreadPoolExecutor(RPC_WORKERS, thread_name_prefix="synth-rpc"),
        "synthesize": futures.ThreadPoolExecutor(
            config.max_in_flight + SPARE_WORKERS, thread_name_prefix="synth-call"
        ),
        "stream": futures.ThreadPoolExecutor(
            config.max_streams + SPARE_WORKERS, thread_name_prefix="synth-stream"
        ),
        "reflection": futures.ThreadPoolExecutor(REFLECTION_WORKERS, thread_name_prefix="synth-reflect"),
    }


def _on(pool: futures.ThreadPoolExecutor, behavior: Callable[..., Any]) -> Callable[..., Any]:
    """`behavior`, run on its own thread pool (grpc's `experimental_thread_pool` hook): calls of
    one kind that hang (a client that stops reading) can use up only that pool."""

    def run(request: Any, context: grpc.ServicerContext) -> Any:
        return behavior(request, context)

    run.experimental_thread_pool = pool  # type: ignore[attr-defined]
    return run


def _add_synth_service(
    service: SynthService,
    server: grpc.Server,
    calls: futures.ThreadPoolExecutor,
    streams: futures.ThreadPoolExecutor,
) -> None:
    """The generated registration, with a request decoder that turns an undecodable request
    (a text field that is not UTF-8) into INVALID_ARGUMENT instead of INTERNAL, and each
    streaming method on its own threads."""
    handlers = {
        "ListVoices": grpc.unary_unary_rpc_method_handler(
            service.ListVoices,
            request_deserializer=synth_pb2.ListVoicesRequest.FromString,
            response_serializer=synth_pb2.ListVoicesResponse.SerializeToString,
        ),
        # Registered as streams of requests (the same on the wire as one request): the handler
        # reads the request itself, so a call that never sends it is ended by the stall watch
        # instead of holding its thread until its deadline.
        "Synthesize": grpc.stream_stream_rpc_method_handler(
            _on(calls, service.SynthesizeStream),
            request_deserializer=decode_request,
            response_serializer=synth_pb2.SynthesizeResponse.SerializeToString,
        ),
        "GetConversation": grpc.stream_stream_rpc_method_handler(
            _on(streams, service.GetConversationStream),
            request_deserializer=synth_pb2.GetConversationRequest.FromString,
            response_serializer=synth_pb2.SynthesizeResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))


def _add_reflection(server: grpc.Server, pool: futures.ThreadPoolExecutor) -> None:
    """Server reflection (grpcurl, grpcui) on its own few threads: a reflection stream waits for
    its client's next request on its thread, so idle ones must not take Health's."""
    names = (
        SERVICE_NAME,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    servicer = reflection.ReflectionServicer(names)
    handler = grpc.stream_stream_rpc_method_handler(
        _on(pool, servicer.ServerReflectionInfo),
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(reflection.SERVICE_NAME, {"ServerReflectionInfo": handler}),)
    )


def serve_forever(server: SynthServer) -> None:
    """Run until SIGTERM or SIGINT, then drain."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # Woken twice a second: a signal the kernel delivers to one of the server's other threads
    # only runs its Python handler once the main thread runs again, so an untimed wait could
    # sleep through a SIGTERM.
    while not stop.wait(0.5):
        pass
    log_event(logging.INFO, "draining", server.service.config.log_json, in_flight=server.service.in_flight)
    server.stop()
