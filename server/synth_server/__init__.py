"""synth_server: the gRPC service around `synth.pipeline.Pipeline` (part of the main distribution).

    synth serve --port 50051 --out /data/dataset
"""

from .app import ServerOptions, SynthServer, serve_forever
from .service import ServiceConfig, SynthService

__all__ = ["ServerOptions", "ServiceConfig", "SynthServer", "SynthService", "serve_forever"]
