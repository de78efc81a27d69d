"""The `synth` command line: one module per command group, each adding its parsers and calling
the library (synth.api). Errors the library raises are printed with the command's flag names.

To add a command: a function in the group's module (or a new module with `register(sub)`, listed
in GROUPS) that parses, calls the library, prints, and returns an exit code."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..errors import SynthError
from ..version import __version__
from . import corpora, dataset, generate, service
from .common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, error_message

GROUPS = (generate, dataset, corpora, service)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="synth", description="Turn text dialogs into multi-speaker conversational speech datasets."
    )
    parser.add_argument("--version", action="version", version=f"synth {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


def _command_parser(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.ArgumentParser:
    """The subparser that parsed the command (for its flag names in error messages)."""
    node = parser
    for word in list(argv if argv is not None else sys.argv[1:]):
        subs = [a for a in node._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            if word.startswith("-"):
                continue
            break
        node = subs[0].choices[word]
    return node


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    if not words:  # bare `synth`: the overview, not an error
        parser.print_help()
        return EXIT_USAGE
    for group in GROUPS:  # e.g. `generate --for NAME`: a preset's defaults, before parsing
        prepare = getattr(group, "prepare", None)
        if prepare is not None:
            prepare(parser, words)
    args = parser.parse_args(words)
    try:
        return args.run(args)
    except BrokenPipeError:  # `synth voices --json | head -3`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (SynthError, OSError) as exc:
        message = error_message(_command_parser(parser, argv), exc)
        print(f"synth {args.command}: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"synth {args.command}: interrupted; run it again to resume", file=sys.stderr)
        return 130
