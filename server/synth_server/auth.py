"""The bearer token every call must carry when the server is given one (--auth-token)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import grpc

from .metrics import Metrics

# Request-streaming handlers: refused at once, without waiting for a request that a caller may
# never send (a thread of the short-call pool would wait for it).
STREAMING = ("Synthesize", "GetConversation", "ServerReflectionInfo")


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
                self._metrics.finished(method, grpc.StatusCode.UNAUTHENTICATED)
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

        if method in STREAMING:
            return grpc.stream_stream_rpc_method_handler(deny)
        return grpc.stream_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation: Callable[..., Any], details: grpc.HandlerCallDetails) -> Any:
        if details.method.startswith("/grpc.health.v1.Health/"):
            return continuation(details)
        given = dict(details.invocation_metadata or ()).get("authorization", "")
        if hmac.compare_digest(given.encode(), self._expected):
            return continuation(details)
        return self._deny(details.method.rsplit("/", 1)[-1])
