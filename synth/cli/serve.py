"""`synth serve`: the gRPC synthesis service over the same library (synth_server)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from .. import api
from ..engines.onnx_session import intra_op_threads
from ..errors import ConfigError
from ..presets import VOICE_PRESETS
from .common import EXIT_OK, add_parser, folder_option
from .engine import add_engine_args, engine_from
from .flags import add_fields, config_from, env
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
    conversation_audio_from,
    limits_from,
    pipeline_from,
    samples_from,
)


def register(sub: Any) -> None:
    """The `synth serve` command: its listening, service and generation options, each also read from
    SYNTH_<OPTION>."""
    from synth_server import SERVER_LIMITS, ServerOptions, ServiceConfig

    sv = add_parser(
        sub,
        "serve",
        "run the gRPC synthesis service",
        "Serve synth.v1.Synth over gRPC with health checking, reflection and "
        "Prometheus metrics. Every option also reads an environment variable "
        "(SYNTH_<OPTION>), for containers.",
    )
    add_fields(
        sv.add_argument_group("listening"), ServerOptions, from_env=True, defaults={"metrics_port": 9090}
    )
    sv.add_argument("--out", default=env("OUT", "dataset"), help="dataset root the server writes to")
    sv.add_argument(
        "--threads",
        type=int,
        default=env("THREADS", None),
        metavar="T",
        help="ONNX Runtime threads of the engine (default: ONNX Runtime's own, one per core: a server "
        "has the machine; several on one machine: divide the cores among them)",
    )
    sv.add_argument(
        "--voices",
        default=env("VOICES", None),
        choices=list(VOICE_PRESETS),
        help="a voice preset instead of --model: "
        + "; ".join(f"{p.name}: {p.summary}" for p in VOICE_PRESETS.values()),
    )
    add_engine_args(sv)
    add_gap_args(sv, "seed for casting and turn gaps (a request may give its own)", from_env=True)
    add_duplex_args(sv)
    add_casting_args(sv)
    add_fields(sv.add_argument_group("calls"), ServiceConfig, from_env=True)
    add_batch_args(sv, "across all streams")
    add_limit_args(sv.add_argument_group("request limits"), SERVER_LIMITS, from_env=True)
    add_sample_args(sv, "--sample-format")
    add_asr_check_args(sv)
    sv.set_defaults(run=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """The `synth serve` command: the service's settings from the flags, then serving until
    stopped."""
    from synth_server import ServerOptions, ServiceConfig, SynthServer, serve_forever

    logging.basicConfig(
        level=logging.INFO, format="%(message)s" if args.log_json else "%(asctime)s %(name)s %(message)s"
    )
    options = config_from(args, ServerOptions)
    check = asr_check_from(args)
    engines, pipeline = engine_from(args), pipeline_from(args)
    if args.voices and args.voices not in VOICE_PRESETS:  # SYNTH_VOICES is not checked by argparse
        raise ConfigError("voices", f"choose one of {', '.join(VOICE_PRESETS)}", args.voices)
    if args.voices:
        engines, pipeline = VOICE_PRESETS[args.voices].apply(engines, pipeline, args.model_cache)
    generation = api.GenerateOptions(
        pipeline=pipeline,
        samples=samples_from(args),
        tokenizer=args.tokenizer,
        limits=limits_from(args),
        batch=batch_from(args),
        asr_check=check,
        conversation_audio=conversation_audio_from(args),
    )
    config = config_from(args, ServiceConfig, out=folder_option(args.out), generation=generation)
    threads = int(args.threads) if args.threads is not None else None
    if threads is not None and threads < 1:
        raise ConfigError("threads", "must be at least 1", threads)
    with intra_op_threads(threads):  # the engine's sessions are made on the first call
        server = SynthServer(api.load_engine(engines), config, options).start()
        print(
            f"synth serve: listening on {args.host}:{server.port}"
            + (f", metrics on :{server.metrics_port}/metrics" if server.metrics_port else ""),
            flush=True,
        )
        serve_forever(server)
    return EXIT_OK
