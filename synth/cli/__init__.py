"""The `synth` command line: one module per command group, each adding its parsers and calling
the library (synth.api). Errors the library raises are printed with the command's flag names:
a bad option value exits 2 (argparse's, or a ConfigError), any other error 1, a run that
finished with rejected items 3.

To add a command: a function in the group's module (or a new module with `register(sub)`, listed
in GROUPS) that parses, calls the library, prints, and returns an exit code."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence

from ..allocator import limit_arenas
from ..errors import SynthError
from ..version import __version__
from . import corpora, dataset, generate, memory, report, serve, service, voices
from .common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, error_message

GROUPS = (generate, voices, dataset, memory, report, corpora, serve, service)


class Parser(argparse.ArgumentParser):
    """Usage errors as one line and a pointer to --help (not the whole usage of fifty flags)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n(see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="synth", description="Turn text dialogs into multi-speaker conversational speech datasets."
    )
    parser.add_argument("--version", action="version", version=f"synth {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
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
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        limit_arenas()  # before the engines' threads: long conversations stay flat (synth.allocator)
    try:
        return args.run(args)
    except BrokenPipeError:  # `synth voices --json | head -3`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (SynthError, OSError) as exc:
        if getattr(exc, "reported", False):  # printed once already, where it happened
            print(f"synth {args.command}: stopped at the first error (--on-error fail)", file=sys.stderr)
            return EXIT_ERROR
        message = error_message(_command_parser(parser, argv), exc)
        print(f"synth {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE if getattr(exc, "usage", False) else EXIT_ERROR
    except KeyboardInterrupt as stop:
        how = "stopped (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
        print(
            f"synth {args.command}: {how}; every conversation finished is kept, anything unfinished "
            "was abandoned (nothing of it is listed): run it again to resume",
            file=sys.stderr,
        )
        return 128 + signal.SIGTERM if isinstance(stop, Terminated) else 130


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's stop, `kill`), handled like Ctrl-C: whatever is not committed is
    abandoned cleanly (staging folders are removed; the next run resumes), and it is said."""


def _stop(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    print(
        "synth: SIGTERM: taking no new work, finishing the conversations in progress (a second "
        "SIGTERM abandons them)",
        file=sys.stderr,
    )
    raise Terminated()
