"""`synth serve`: the gRPC synthesis service over the same library (synth_server)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from .. import api
from ..errors import ConfigError
from ..produce.pipeline import PipelineConfig
from ..produce.timeline import GapDistribution
from .common import EXIT_OK, add_parser
from .engine import add_engine_args, engine_from
from .groups import (
    add_asr_check_args,
    add_batch_args,
    add_casting_args,
    add_duplex_args,
    add_gap_args,
    add_limit_args,
    add_sample_args,
    asr_check_from,
    batch_from,
    casting_from,
    conversation_audio_from,
    limits_from,
    samples_from,
)
from .options import env


def register(sub: Any) -> None:
    from synth_server import SERVER_LIMITS, ServerOptions, ServiceConfig

    sv = add_parser(
        sub,
        "serve",
        "run the gRPC synthesis service",
        "Serve synth.v1.Synth over gRPC with health checking, reflection and "
        "Prometheus metrics. Every option also reads an environment variable "
        "(SYNTH_<OPTION>), for containers.",
    )
    sv.add_argument(
        "--host",
        default=env("HOST", ServerOptions.host),
        help="address to listen on (default: loopback only; '[::]' for every interface, which "
        "warns unless --auth-token and TLS are set)",
    )
    sv.add_argument("--port", type=int, default=env("PORT", ServerOptions.port), help="gRPC port")
    sv.add_argument("--out", default=env("OUT", "dataset"), help="dataset root the server writes to")
    add_engine_args(sv)
    add_gap_args(sv, "seed for casting and turn gaps (a request may give its own)", from_env=True)
    add_duplex_args(sv)
    add_casting_args(sv)
    sv.add_argument(
        "--max-in-flight",
        type=int,
        default=env("MAX_IN_FLIGHT", ServiceConfig.max_in_flight),
        help="Synthesize calls served at once; more get RESOURCE_EXHAUSTED",
    )
    sv.add_argument(
        "--max-streams",
        type=int,
        default=env("MAX_STREAMS", ServiceConfig.max_streams),
        help="GetConversation calls served at once (each streams a stored conversation); more get "
        "RESOURCE_EXHAUSTED",
    )
    sv.add_argument(
        "--stall-seconds",
        type=float,
        default=env("STALL_SECONDS", ServiceConfig.stall_seconds),
        help="end a call whose client has not taken a streamed message for this long (a client "
        "that stops reading gives its thread and slot back)",
    )
    add_batch_args(sv, "across all streams")
    add_limit_args(sv.add_argument_group("request limits"), SERVER_LIMITS, from_env=True)
    add_sample_args(sv, "--sample-format")
    sv.add_argument(
        "--auth-token",
        default=env("AUTH_TOKEN", None),
        help="require 'authorization: Bearer TOKEN' on every call (default: off)",
    )
    sv.add_argument(
        "--require-auth",
        action="store_true",
        default=env("REQUIRE_AUTH", "") == "1",
        help="refuse to start without a non-empty --auth-token (SYNTH_REQUIRE_AUTH=1; for "
        "deployments whose token comes from a secret)",
    )
    sv.add_argument("--tls-cert", default=env("TLS_CERT", None), help="PEM certificate chain (TLS on)")
    sv.add_argument("--tls-key", default=env("TLS_KEY", None), help="PEM private key")
    sv.add_argument(
        "--metrics-port",
        type=int,
        default=env("METRICS_PORT", 9090),
        help="Prometheus /metrics port (-1: off)",
    )
    sv.add_argument(
        "--drain-seconds",
        type=float,
        default=env("DRAIN_SECONDS", ServerOptions.drain_seconds),
        help="on SIGTERM, time given to calls in flight",
    )
    sv.add_argument(
        "--log-json",
        action="store_true",
        default=env("LOG_JSON", "") == "1",
        help="log one JSON object per line (for log collectors)",
    )
    add_asr_check_args(sv)
    sv.set_defaults(run=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from synth_server import ServerOptions, ServiceConfig, SynthServer, serve_forever

    logging.basicConfig(
        level=logging.INFO, format="%(message)s" if args.log_json else "%(asctime)s %(name)s %(message)s"
    )
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ConfigError("tls_cert", "--tls-cert and --tls-key go together")
    if args.require_auth and not (args.auth_token or "").strip():
        raise ConfigError(
            "auth_token",
            "--require-auth is set but no token was given (SYNTH_AUTH_TOKEN is empty or unset): "
            "refusing to serve without one",
        )
    for name in ("max_in_flight", "max_streams"):
        if getattr(args, name) < 1:
            raise ConfigError(name, "must be at least 1", getattr(args, name))
    if args.stall_seconds <= 0:
        raise ConfigError("stall_seconds", "must be more than 0", args.stall_seconds)
    check = asr_check_from(args)
    config = ServiceConfig(
        out=Path(args.out),
        pipeline=PipelineConfig(
            seed=args.seed,
            gap=GapDistribution.parse(args.gap),
            backchannels=args.backchannels,
            **casting_from(args),
        ),
        limits=limits_from(args),
        max_in_flight=args.max_in_flight,
        max_streams=args.max_streams,
        stall_seconds=args.stall_seconds,
        batch=batch_from(args),
        samples=samples_from(args),
        tokenizer=args.tokenizer,
        asr_check=api.asr_check(check) if check else None,
        log_json=args.log_json,
        conversation_audio=conversation_audio_from(args),
    )
    options = ServerOptions(
        host=args.host,
        port=args.port,
        auth_token=args.auth_token or None,
        tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None,
        metrics_port=None if args.metrics_port < 0 else args.metrics_port,
        drain_seconds=args.drain_seconds,
    )
    server = SynthServer(api.load_engine(engine_from(args)), config, options).start()
    print(
        f"synth serve: listening on {args.host}:{server.port}"
        + (f", metrics on :{server.metrics_port}/metrics" if server.metrics_port else ""),
        flush=True,
    )
    serve_forever(server)
    return EXIT_OK
