"""synth.client: the light client library and batch client (installed as `synth.client`).

Not built yet: it comes with the service issue."""
