"""synth_server: the gRPC service around `synth.pipeline.Pipeline` (part of the main distribution).

synth serve --port 50051 --out /data/dataset
"""

from .app import ServerOptions, SynthServer, serve_forever
from .service import SERVER_LIMITS, ServiceConfig, SynthService

__all__ = ["SERVER_LIMITS", "ServerOptions", "ServiceConfig", "SynthServer", "SynthService", "serve_forever"]
