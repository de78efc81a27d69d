"""The exceptions the client raises: one type per kind of failure, each carrying the server's
status code and message. They are `grpc.RpcError`s too (with `code()` and `details()`), so code
that catches grpc's errors keeps working."""

from __future__ import annotations

import grpc


class SynthRpcError(grpc.RpcError):
    """A call that failed; `str()` is the server's message."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(f"{code.name}: {details}")
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def __str__(self) -> str:
        return f"{self._code.name}: {self._details}"


class InvalidRequest(SynthRpcError):
    """The request names a bad field or turn, or an unknown voice (INVALID_ARGUMENT, NOT_FOUND)."""


class AlreadyExists(SynthRpcError):
    """The conversation is already in the server's dataset, or being made by another call."""


class Unavailable(SynthRpcError):
    """The server is busy, draining, unreachable or cannot write (UNAVAILABLE, RESOURCE_EXHAUSTED):
    retry later or on another replica."""


class Unauthenticated(SynthRpcError):
    """A missing or wrong bearer token."""


class DeadlineExceeded(SynthRpcError):
    """The call's deadline passed; nothing was written."""


class ServerError(SynthRpcError):
    """Anything else (INTERNAL, CANCELLED, ...)."""


class DataLoss(ServerError):
    """The conversation is damaged on the server (a file missing, changed, or named outside its
    folder): nothing of it should be kept (DATA_LOSS)."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.NOT_FOUND: InvalidRequest,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Unavailable,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.DATA_LOSS: DataLoss,
}


def translate(exc: grpc.RpcError) -> SynthRpcError:
    """The documented exception for a grpc error (unchanged if it already is one)."""
    if isinstance(exc, SynthRpcError):
        return exc
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else str(exc)) or ""
    return _BY_CODE.get(code, ServerError)(code, details)
