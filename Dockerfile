# synth gRPC service for a CUDA GPU host:
#   docker build -t synth .
#   docker run --gpus all -p 50051:50051 -p 9090:9090 -v /data/dataset:/data/dataset \
#     -e SYNTH_AUTH_TOKEN="$(openssl rand -hex 32)" synth
#
# The server listens on every interface of the container (`--host [::]` below: `synth serve`
# alone listens on loopback only) and warns at start when it does so without a token or TLS.
#
# The install step is the README's setup command (the same one .ci/run runs), so CI proves it.
# PyPI's torch wheels for Linux are CUDA builds and carry their CUDA libraries; the host provides
# the driver through the NVIDIA container toolkit (--gpus all).
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip ca-certificates espeak-ng \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 synth \
 && mkdir -p /data/dataset /models \
 && chown -R synth:synth /data /models
WORKDIR /app
COPY --chown=synth:synth . /app
USER synth

# The README's test setup (everything the tests and the smoke check use; the light `pip install -e .`
# makes datasets with the embedded voice alone).
RUN python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]"
ENV PATH=/app/.venv/bin:$PATH

# Configuration: every `synth serve` option reads SYNTH_<OPTION>.
ENV SYNTH_PORT=50051 SYNTH_OUT=/data/dataset SYNTH_DEVICE=auto \
    SYNTH_METRICS_PORT=9090 SYNTH_MAX_IN_FLIGHT=64 SYNTH_DRAIN_SECONDS=30 \
    HF_HOME=/models/huggingface XDG_CACHE_HOME=/models/cache
VOLUME ["/data/dataset", "/models"]
EXPOSE 50051 9090

HEALTHCHECK --interval=15s --timeout=6s --start-period=60s --retries=3 \
  CMD ["synth", "health", "--server", "localhost:50051"]

# exec form: SIGTERM reaches synth, which drains requests in flight before exiting.
STOPSIGNAL SIGTERM
CMD ["synth", "serve", "--host", "[::]"]
