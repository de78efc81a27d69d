"""synth.server: the gRPC service around `synth.pipeline.Pipeline` (installed as `synth.server`).

Not built yet: it comes with the service issue. The pipeline it will wrap is complete and used
by `synth generate`."""
