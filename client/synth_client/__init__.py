"""synth_client: the light client of the synth gRPC service (needs only grpcio and protobuf;
its own distribution: `pip install ./client`).

    from synth_client import SynthClient
    with SynthClient("synth.internal:50051") as c:
        for event in c.synthesize(dialog, voices={"A": "...", "B": "..."}):
            ...   # TurnEvent (WAV bytes) per turn as soon as it is ready, then a SummaryEvent
"""

from .aio import AsyncSynthClient
from .errors import (
    AlreadyExists,
    DataLoss,
    DeadlineExceeded,
    InvalidRequest,
    ServerError,
    SynthRpcError,
    Unauthenticated,
    Unavailable,
)
from .events import SummaryEvent, TurnEvent
from .health import check_health
from .request import build_request
from .retry import Backoff
from .sync import SynthClient

__all__ = [
    "AlreadyExists",
    "DataLoss",
    "DeadlineExceeded",
    "InvalidRequest",
    "ServerError",
    "SynthRpcError",
    "Unauthenticated",
    "Unavailable",
    "AsyncSynthClient",
    "Backoff",
    "SummaryEvent",
    "SynthClient",
    "TurnEvent",
    "build_request",
    "check_health",
]
