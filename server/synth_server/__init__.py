"""synth_server: the gRPC service around `synth.produce.pipeline.Pipeline` (part of the main distribution).

synth serve --port 50051 --out /data/dataset
"""

from .app import ServerOptions, SynthServer, serve_forever
from .service import SERVER_LIMITS, ServiceConfig, SynthService, generation

__all__ = [
    "SERVER_LIMITS",
    "ServerOptions",
    "ServiceConfig",
    "SynthServer",
    "SynthService",
    "generation",
    "serve_forever",
]
