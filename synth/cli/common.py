"""What every command shares: exit codes, the help formatter (every option's default shown), the
SYNTH_<NAME> environment defaults, flags for an options dataclass, and errors rendered with the
command's flag names. The option groups themselves are in synth/cli/groups.py."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import ConfigError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, unless there is none (None, an off switch, an empty list);
    in a description or epilog, paragraphs whose lines are indented (examples) are kept as
    written, the others wrapped."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = text.split("\n\n")
        out = []
        for paragraph in paragraphs:
            lines = paragraph.splitlines()
            if lines and all(line.startswith("  ") for line in lines):
                out.append("\n".join(indent + line for line in lines))
            else:
                out.append(super()._fill_text(paragraph, width, indent))
        return "\n\n".join(out)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if default is None or default is False or default == [] or default is argparse.SUPPRESS:
            return text
        if "%(default)" in text:
            return text
        return super()._get_help_string(action) or text


def add_parser(
    sub: Any, name: str, help: str, description: str, epilog: str | None = None
) -> argparse.ArgumentParser:
    """A command's parser with the shared help formatter (every default shown)."""
    return sub.add_parser(
        name, help=help, description=description, epilog=epilog, formatter_class=HelpFormatter
    )


def add_options(parser: argparse.ArgumentParser | Any, options: type) -> None:
    """One flag per field of an options dataclass (a corpus's, an export's), from its metadata."""
    from .flags import add_fields

    add_fields(parser, options)


def options_from(args: argparse.Namespace, options: type) -> Any:
    """An options dataclass (a corpus's, an export's) made from the parsed arguments."""
    from .flags import config_from

    return config_from(args, options)


def flag_for(parser: argparse.ArgumentParser, option: str) -> str:
    """The command-line flag of a library option name (a config field or a flag's dest)."""
    dest = {"servers": "server", "voice_override": "voice"}.get(option, option)
    for action in parser._actions:
        if action.dest == dest and action.option_strings:
            return action.option_strings[0]
        for group in getattr(action, "_group_actions", []):
            if group.dest == dest and group.option_strings:
                return group.option_strings[0]
    return option


def folder_option(value: str, option: str = "out") -> Path:
    """A folder an option names, to be made or added to: refused (a usage error naming the
    option) when it, or a folder above it, is a file."""
    path = Path(value)
    for step in (path, *path.parents):
        if step.exists() or step.is_symlink():
            if not step.is_dir():
                where = "is a file" if step == path else f"is inside {str(step)!r}, which is a file"
                raise ConfigError(
                    option, f"{where}, not a folder: give a folder (new, or a dataset to add to)", value
                )
            break
    return path


def error_message(parser: argparse.ArgumentParser, exc: Exception) -> str:
    """An error as the user reads it: a file in the way of a folder said in words, a ConfigError
    naming this command's flags."""
    if isinstance(exc, (FileExistsError, NotADirectoryError)) and exc.filename:
        # a folder to make where a file is: say so in words, not [Errno 17] / [Errno 20]
        return f"{exc.filename}: a file is in the way of a folder ({exc.strerror})"
    if isinstance(exc, ConfigError):  # the option and those its message mentions, as flags
        return exc.render(flag_for(parser, exc.option), lambda name: flag_for(parser, name))
    return str(exc)
