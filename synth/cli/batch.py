"""The commands that talk to running servers: `synth batch` (dialogs to servers) and `synth health`
(a probe for container health checks)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from .common import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, add_parser, folder_option
from .groups import (
    add_source_args,
    chat_from,
    limits_from,
)


def register(sub: Any) -> None:
    """Add `synth batch` and `synth health` to the command line."""
    b = add_parser(
        sub,
        "batch",
        "send dialogs to synth servers",
        "Send every dialog of a source to one or more `synth serve` servers (round "
        "robin) with bounded concurrency; resumable.",
    )
    b.add_argument(
        "--server",
        action="append",
        required=True,
        metavar="HOST:PORT",
        help="server address (repeatable: round robin across them)",
    )
    add_source_args(b)
    b.add_argument("--concurrency", type=int, default=8, help="dialogs in flight")
    b.add_argument(
        "--out",
        default=None,
        help="also write every streamed conversation here (a local copy); conversations "
        "already in its manifest are not sent again",
    )
    b.add_argument(
        "--failures",
        default=None,
        help="where to list failed dialogs with their reasons (default: failures.jsonl in --out, "
        "else batch_failures.jsonl here)",
    )
    b.add_argument(
        "--resume-with-changes",
        action="store_true",
        help="add to a local copy made with another --seed (its dataset.json says which) instead of refusing",
    )
    b.add_argument("--token", default=os.environ.get("SYNTH_AUTH_TOKEN"), help="bearer token")
    b.add_argument("--tls", action="store_true", help="connect with TLS (the system's CAs)")
    b.add_argument(
        "--tls-ca",
        default=os.environ.get("SYNTH_TLS_CA"),
        metavar="FILE",
        help="connect with TLS, trusting the CA(s) in this PEM file (a private CA)",
    )
    b.add_argument("--seed", type=int, default=None, help="seed sent with every request")
    b.add_argument("--timeout", type=float, default=600.0, help="deadline per dialog in seconds")
    b.add_argument(
        "--unreachable-timeout",
        type=float,
        default=10.0,
        metavar="SEC",
        help="stop when no server could be reached for this long (connection refused, no route, "
        "TLS handshake failures); the dialogs not made are listed as UNREACHABLE",
    )
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(run=cmd_batch)

    h = add_parser(
        sub,
        "health",
        "check a server's gRPC health (exit 0 when SERVING)",
        "Ask the standard grpc.health.v1 service; for container HEALTHCHECKs.",
    )
    h.add_argument("--server", default="localhost:50051", help="server address")
    h.add_argument("--service", default="synth.v1.Synth", help="'' for the whole server")
    h.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer")
    h.add_argument("--tls", action="store_true", help="connect with TLS")
    h.add_argument(
        "--tls-ca", "--root-cert", dest="root_cert", default=None, metavar="FILE",
        help="PEM file of the CA to trust (TLS on)",
    )  # fmt: skip
    h.set_defaults(run=cmd_health)


def cmd_batch(args: argparse.Namespace) -> int:
    """Send the dialogs to the servers (synth.remote.batch), print the summary; exit 3 when some failed."""
    from ..dialogs.sources import open_dialogs
    from ..remote.batch import BatchRun, BatchSettings
    from ..workflows.outcome import FAILURES

    dialogs = open_dialogs(
        args.dialogs, args.format, args.split, args.limit, limits_from(args), chat_from(args)
    )
    out = folder_option(args.out) if args.out else None
    failures = (
        Path(args.failures) if args.failures else (out / FAILURES if out else Path("batch_failures.jsonl"))
    )
    settings = BatchSettings(
        servers=args.server,
        concurrency=args.concurrency,
        local_out=out,
        token=args.token,
        tls=args.tls,
        tls_ca=Path(args.tls_ca) if args.tls_ca else None,
        failures_path=failures,
        timeout=args.timeout,
        seed=args.seed,
        progress=not args.quiet,
        unreachable_timeout=args.unreachable_timeout,
        resume_with_changes=args.resume_with_changes,
    )
    summary = BatchRun(settings).run(dialogs)
    print(summary.format())
    return EXIT_PARTIAL if summary.failed else EXIT_OK


def cmd_health(args: argparse.Namespace) -> int:
    """Print the server's health status; exit 0 only when it is SERVING."""
    import grpc

    from synth_client import check_health

    roots = Path(args.root_cert).read_bytes() if args.root_cert else None
    try:
        status = check_health(args.server, args.service, args.timeout, args.tls, roots)
    except grpc.RpcError as exc:
        print(f"{args.server}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return EXIT_ERROR
    print(f"{args.server}: {status}")
    return EXIT_OK if status == "SERVING" else EXIT_ERROR
