"""Prometheus metrics of one server instance (its own registry: no process-global state), and
what each event of a call adds to them."""

from __future__ import annotations

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Metrics:
    """The server's Prometheus counters, gauges and histograms, in a registry of its own (no
    process-global state), and the events of a call that update them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "synth_requests", "RPCs finished, by method and status code", ["method", "code"], registry=r
        )
        self.errors = Counter(
            "synth_errors", "RPCs that ended with an error, by status code", ["code"], registry=r
        )
        self.turns = Counter("synth_turns", "Turns synthesized", registry=r)
        self.audio_seconds = Counter("synth_audio_seconds", "Seconds of speech produced", registry=r)
        self.synthesis_seconds = Counter(
            "synth_synthesis_seconds", "Wall seconds spent synthesizing", registry=r
        )
        self.turn_latency = Histogram(
            "synth_turn_synthesis_seconds",
            "Synthesis time per turn",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=r,
        )
        self.in_flight = Gauge("synth_requests_in_flight", "Synthesize calls being served", registry=r)
        self.streams_in_flight = Gauge(
            "synth_streams_in_flight", "GetConversation calls being served", registry=r
        )
        self.stalled = Counter(
            "synth_stalled_calls",
            "Calls ended because the client stopped reading (--stall-seconds), by method",
            ["method"],
            registry=r,
        )
        self.queue_depth = Gauge("synth_queue_depth", "Turns waiting for the synthesis worker", registry=r)
        self.batch_size = Histogram(
            "synth_batch_size", "Turns per engine call", buckets=(1, 2, 4, 8, 16, 32, 64), registry=r
        )

    def finished(self, method: str, code: grpc.StatusCode) -> None:
        """A call ended with `code` (every call, refused ones included, is counted once)."""
        self.requests.labels(method, code.name).inc()
        if code != grpc.StatusCode.OK:
            self.errors.labels(code.name).inc()

    def turn(self, duration_sec: float, synthesis_sec: float) -> None:
        """A turn synthesized and streamed."""
        self.turns.inc()
        self.audio_seconds.inc(duration_sec)
        self.synthesis_seconds.inc(synthesis_sec)
        self.turn_latency.observe(synthesis_sec)

    def batch(self, size: int, depth: int) -> None:
        """The engine took a batch of `size` turns, leaving `depth` in its queue."""
        self.batch_size.observe(size)
        self.queue_depth.set(depth)

    def serve_http(self, port: int, addr: str = "0.0.0.0") -> int:
        """Expose /metrics on `port` (0 picks a free one); return the port."""
        server, _ = start_http_server(port, addr=addr, registry=self.registry)
        return server.server_port
