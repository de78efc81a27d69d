"""docs/cli.md, the command-line reference, generated from the parsers themselves so that it
cannot drift from `--help` (a test compares the file with this output):

    python -m synth.cli.reference > docs/cli.md
"""

from __future__ import annotations

import argparse
import os
import sys


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def markdown() -> str:
    """Every command's description and full help, in the order of `synth --help`."""
    from . import build_parser

    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # the same wrapping on every machine
    try:
        parser = build_parser()
        lines = [
            "# Command-line reference",
            "",
            "Generated from the parsers (`python -m synth.cli.reference > docs/cli.md`); every command",
            "also has `--help`. Exit codes: 0 done, 1 an error (named), 2 a bad option value, 3 finished",
            "with rejected items (listed in failures.jsonl) or damaged conversations.",
            "",
        ]
        commands = _subparsers(parser)
        lines += [f"- [`synth {name}`](#synth-{name})" for name in commands]
        for name, sub in commands.items():
            lines += ["", f"## synth {name}", "", "```", sub.format_help().rstrip(), "```"]
            for inner, nested in _subparsers(sub).items():
                lines += ["", f"### synth {name} {inner}", "", "```", nested.format_help().rstrip(), "```"]
        return "\n".join(lines) + "\n"
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved


if __name__ == "__main__":
    sys.stdout.write(markdown())
