"""The `synth` command line: one module per command group, each adding its parsers and calling
the library (synth.api). Errors the library raises are printed with the command's flag names:
a bad option value exits 2 (argparse's, or a ConfigError), any other error 1, a run that
finished with rejected items 3.

To add a command: a function in the group's module (or a new module with `register(sub)`, listed
in GROUPS) that parses, calls the library, prints, and returns an exit code."""

from __future__ import annotations

import argparse
import difflib
import os
import signal
import sys
import threading
from collections.abc import Sequence

from ..allocator import limit_arenas
from ..errors import SynthError
from ..version import __version__
from . import batch, corpora, dataset, generate, memory, report, score, serve, voices
from .common import EXIT_ERROR, EXIT_OK, EXIT_USAGE, error_message
from .logs import configure_logging

GROUPS = (generate, voices, dataset, score, memory, report, corpora, serve, batch)


class Parser(argparse.ArgumentParser):
    """Usage errors as one line and a pointer to --help (not the whole usage of fifty flags)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n(see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole `synth` parser: every group's commands, each with the logging flags (the CLI
    reference, docs/cli.md, is generated from it)."""
    parser = Parser(
        prog="synth", description="Turn text dialogs into multi-speaker conversational speech datasets."
    )
    parser.add_argument("--version", action="version", version=f"synth {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for group in GROUPS:
        group.register(sub)
    for command in _commands(parser):
        _add_log_flags(command)
    return parser


def _commands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every command's own parser (the leaves under the sub-commands)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [parser]
    return [leaf for child in dict.fromkeys(subs[0].choices.values()) for leaf in _commands(child)]


def _add_log_flags(command: argparse.ArgumentParser) -> None:
    """--log-json and -v on every command: how the library's log lines are written."""
    flags = {o for action in command._actions for o in action.option_strings}
    group = command.add_argument_group("logging")
    if "--log-json" not in flags:
        group.add_argument(
            "--log-json", action="store_true", help="log lines as JSON objects (for collectors)"
        )
    if "--verbose" not in flags and "-v" not in flags:
        group.add_argument(
            "-v", "--verbose", action="count", default=0, help="more log lines: -v information, -vv debug"
        )


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


# Flags a newcomer tries that a command does not have, and what it has instead.
INSTEAD = {
    "--input": "--dialogs",
    "--dialog": "--dialogs",
    "--in": "--dialogs",
    "--output": "--out",
    "--out-dir": "--out",
    "--output-dir": "--out",
    "--voice-preset": "--voices",
}
# Per command: flags that belong elsewhere, and why.
ELSEWHERE = {
    "batch": {
        "--voices": "the servers speak with their own voices: start them with `synth serve --voices natural`",
        "--voice": "the servers cast the voices: a dialog's own `voices` field, or `synth serve --voice`",
        "--model": "the servers load the model: `synth serve --model NAME`",
    },
}


def _unknown_flags_first(parser: argparse.ArgumentParser, words: list[str]) -> None:
    """Name the flags the command does not have (argparse names missing required flags first,
    so `synth generate --input x` would say that --dialogs and --out are required), with the
    flag meant when it can be told."""
    command = _command_parser(parser, words)
    known = {o for action in command._actions for o in action.option_strings}
    takes_values = {o for action in command._actions if action.nargs != 0 for o in action.option_strings}
    unknown: list[str] = []
    after_flag = False
    for word in words:
        if word == "--":
            break
        flag = word.split("=", 1)[0]
        if not word.startswith("-") or len(word) < 2 or _is_number(word):
            after_flag = False
            continue
        if flag in known or any(k.startswith(flag) for k in known if flag.startswith("--")):
            after_flag = flag in takes_values and "=" not in word
            continue
        if after_flag and not flag.startswith("--"):  # a value that starts with '-'
            after_flag = False
            continue
        unknown.append(flag)
    if not unknown:
        return
    name = command.prog.split(" ", 1)[-1]
    hints = []
    for flag in unknown:
        why = ELSEWHERE.get(name, {}).get(flag)
        meant = INSTEAD.get(flag)
        if why:
            hints.append(f"{flag}: {why}")
        elif meant in known:
            hints.append(f"{flag}: did you mean {meant}?")
        else:
            close = difflib.get_close_matches(flag, sorted(known), n=1, cutoff=0.75)
            if close:
                hints.append(f"{flag}: did you mean {close[0]}?")
    command.error(f"unrecognized arguments: {' '.join(unknown)}" + ("; " + "; ".join(hints) if hints else ""))


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """The `synth` entry point: parse `argv`, run the command, and turn library errors, a closed pipe
    and interrupts into one message and the exit code."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    if not words:  # bare `synth`: the overview, not an error
        parser.print_help()
        return EXIT_USAGE
    for group in GROUPS:  # e.g. `generate --for NAME`: a preset's defaults, before parsing
        prepare = getattr(group, "prepare", None)
        if prepare is not None:
            prepare(parser, words)
    _unknown_flags_first(parser, words)
    args = parser.parse_args(words)
    configure_logging(getattr(args, "log_json", False), getattr(args, "verbose", 0) or 0)
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
        command = _command_parser(parser, words)
        message = error_message(command, exc)
        usage = getattr(exc, "usage", False)
        see = f"\n(see `{command.prog} --help`)" if usage else ""
        print(f"synth {args.command}: error: {message}{see}", file=sys.stderr)
        return EXIT_USAGE if usage else EXIT_ERROR
    except KeyboardInterrupt as stop:
        print(f"synth {args.command}: {interrupted(stop)}", file=sys.stderr)
        return 128 + signal.SIGTERM if isinstance(stop, Terminated) else 130


def interrupted(stop: KeyboardInterrupt) -> str:
    """What an interrupted run kept and left, from the run's own count when it had one
    (synth.workflows.runner attaches its summary to the interrupt)."""
    how = "stopped (SIGTERM)" if isinstance(stop, Terminated) else "interrupted"
    summary = getattr(stop, "summary", None)
    if summary is None:
        return f"{how}; every conversation finished is kept: run it again to resume"
    kept = f"{how}; {summary.generated} conversation(s) made in this run are kept"
    if summary.finished_after_stop:
        when = "SIGTERM" if isinstance(stop, Terminated) else "the interrupt"
        kept += f" ({summary.finished_after_stop} of them were in progress and finished after {when})"
    if summary.abandoned:
        kept += f"; {summary.abandoned} in progress left unfinished (nothing of them is kept or listed)"
    return kept + ": run it again to resume (it makes only what is missing)"


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's stop, `kill`): no new conversation is started, the ones in progress
    are finished (a scheduler's grace period is for that), and it is said. Ctrl-C leaves the ones
    in progress at their next turn instead (staging folders removed; the next run makes them)."""

    finish_in_progress = True


def _stop(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    print(
        "synth: SIGTERM: taking no new work, finishing the conversations in progress (a second "
        "SIGTERM abandons them)",
        file=sys.stderr,
    )
    raise Terminated()
