"""Building and running the gRPC server: the Synth service, the standard health service
(NOT_SERVING until the model is loaded and warmed up, NOT_SERVING again while draining), server
reflection when asked (--reflection), an optional bearer token on every call, optional TLS, and
a SIGTERM drain.

Each kind of call has its own threads: Synthesize, GetConversation and reflection streams can
each use up only their own pool, so Health and ListVoices always find a free thread. The port is
bound without SO_REUSEPORT (gRPC Python's default turns it on, which lets a second server start
on a port in use and take half of its clients). Listens on loopback unless told otherwise."""

from __future__ import annotations

import errno
import hmac
import ipaddress
import logging
import os
import signal
import socket
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

from .logs import log_event
from .metrics import Metrics
from .service import ServiceConfig, SynthService, decode_request

SERVICE_NAME = synth_pb2.DESCRIPTOR.services_by_name["Synth"].full_name  # "synth.v1.Synth"
LOOPBACK = "127.0.0.1"
RPC_WORKERS = 16  # Health, ListVoices and refusals (auth, limits): short unary calls only
SPARE_WORKERS = 8  # beyond a pool's admission limit, to refuse the calls past it at once
REFLECTION_WORKERS = 4


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Rejects every call without `authorization: Bearer <token>`, except the standard health
    service: load balancers and Kubernetes probes cannot send a token, and health reveals nothing."""

    def __init__(self, token: str, metrics: Metrics | None = None):
        self._expected = f"Bearer {token}".encode()
        self._metrics = metrics

    def _deny(self, method: str) -> Any:
        """A handler refusing the call, counted in the metrics like every other refused call."""

        def deny(_requests: Any, context: grpc.ServicerContext) -> None:
            if self._metrics is not None:
                self._metrics.requests.labels(method, "UNAUTHENTICATED").inc()
                self._metrics.errors.labels("UNAUTHENTICATED").inc()
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

        # Request-streaming handlers: refused at once, without waiting for a request that a
        # caller may never send (a thread of the short-call pool would wait for it).
        if method in ("Synthesize", "GetConversation", "ServerReflectionInfo"):
            return grpc.stream_stream_rpc_method_handler(deny)
        return grpc.stream_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation: Callable[..., Any], details: grpc.HandlerCallDetails) -> Any:
        if details.method.startswith("/grpc.health.v1.Health/"):
            return continuation(details)
        given = dict(details.invocation_metadata or ()).get("authorization", "")
        if hmac.compare_digest(given.encode(), self._expected):
            return continuation(details)
        return self._deny(details.method.rsplit("/", 1)[-1])


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
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        interceptors = (
            [BearerTokenInterceptor(options.auth_token, self.metrics)] if options.auth_token else []
        )
        self.service = SynthService(engine, config, self.metrics)
        self.service.on_write_failure = self._write_failed
        self._probing = threading.Lock()
        self.pools = {
            "rpc": futures.ThreadPoolExecutor(RPC_WORKERS, thread_name_prefix="synth-rpc"),
            "synthesize": futures.ThreadPoolExecutor(
                config.max_in_flight + SPARE_WORKERS, thread_name_prefix="synth-call"
            ),
            "stream": futures.ThreadPoolExecutor(
                config.max_streams + SPARE_WORKERS, thread_name_prefix="synth-stream"
            ),
            "reflection": futures.ThreadPoolExecutor(REFLECTION_WORKERS, thread_name_prefix="synth-reflect"),
        }
        self.server = grpc.server(
            self.pools["rpc"],
            interceptors=interceptors,
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
            self.service.close()
            self._close_pools()
            raise OSError(
                f"cannot listen on {address} (the gRPC port, --port): {bind_error(options.host, options.port)}"
            )
        self.warnings = exposure_warnings(
            options.host, self.port, bool(options.auth_token), bool(options.tls_cert and options.tls_key)
        )
        self.metrics_port = None
        if options.metrics_port is not None:
            http_host = options.host.strip("[]") or "::"
            try:
                self.metrics_port = self.metrics.serve_http(options.metrics_port, http_host)
            except OSError as exc:
                self.server.stop(None)
                self.service.close()
                self._close_pools()
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
        as_json = self.service.config.log_json
        for warning in self.warnings:  # said before the first call can arrive
            log_event(logging.WARNING, "exposed", as_json, warning=warning)
        self.listen()
        if warm_up:
            self.service.warm_up()
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log_event(logging.INFO, "serving", as_json, host=self.options.host, port=self.port)
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
        self.service.close()
        self._close_pools()
        self._stopped.set()

    def _close_pools(self) -> None:
        for pool in self.pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

    def _write_failed(self, exc: BaseException) -> None:
        """A conversation could not be written: NOT_SERVING until the volume has room for one
        again (statvfs) and a probe write succeeds."""
        log_event(
            logging.ERROR,
            "volume not writable: NOT_SERVING until it is",
            self.service.config.log_json,
            error=exc,
        )
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        if self._probing.acquire(blocking=False):
            threading.Thread(target=self._probe_until_writable, name="synth-probe", daemon=True).start()

    def _probe_until_writable(self) -> None:
        try:
            while not self.service.draining.is_set():
                try:
                    room = _free_bytes(self.service.config.out)
                    if room < self.service.room_needed():
                        raise OSError(errno.ENOSPC, f"{room} bytes free")
                    self.service.writer.probe()
                except OSError:
                    time.sleep(self.options.probe_seconds)
                    continue
                self.service.writable.set()
                for name in ("", SERVICE_NAME):
                    self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
                log_event(logging.INFO, "volume writable again: SERVING", self.service.config.log_json)
                return
        finally:
            self._probing.release()

    def wait(self) -> None:
        self._stopped.wait()


def _free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


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
