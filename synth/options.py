"""Options declared once: a config dataclass field carries, in its own metadata, what a user needs
to set it (help, choices, how text becomes a value, and its command-line flag when the flag is not
simply --field-name). The command line builds its flags from these declarations
(synth.cli.options), so no default, choice or help is written twice."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

MISSING = dataclasses.MISSING


def option(
    default: Any = MISSING,
    *,
    help: str,
    factory: Callable[[], Any] | None = None,
    choices: Sequence[Any] | None = None,
    flag: str | None = None,
    metavar: str | None = None,
    parse: Callable[[Any], Any] | None = None,
    text: Callable[[Any], str | None] | None = None,
    env: str | None = None,
    negatable: bool = False,
    repeat: bool = False,
) -> Any:
    """A dataclass field with its command-line declaration.

    flag: the flag (default --field-name); parse: text -> value for values that are not plain
    numbers or strings (e.g. a gap distribution's spec); text: value -> the text the help shows as
    the default; env: SYNTH_<ENV> overrides the default (containers); negatable: a --no- form;
    repeat: the flag may be given several times (parse gets the list)."""
    meta = {
        "help": help,
        "choices": tuple(choices) if choices is not None else None,
        "flag": flag,
        "metavar": metavar,
        "parse": parse,
        "text": text,
        "env": env,
        "negatable": negatable,
        "repeat": repeat,
    }
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def declared(cls: type) -> list[dataclasses.Field[Any]]:
    """The fields of a config class that have a command-line declaration."""
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


def default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None
