"""Options declared once: a config dataclass field carries, in its own metadata, what a user needs
to set it (help, choices, how text becomes a value, and its command-line flag when the flag is not
simply --field-name). The command line builds its flags from these declarations
(synth.cli.flags), so no default, choice or help is written twice.

A declaration also says what the option is for: an option of the dataset (the default) changes
the conversations, so a dataset records it (dataset.json) and a resume compares it; a run option
(`run=True`: threads, caches, devices, how errors are handled) only changes how a run goes and is
never recorded. `when_set=True`: recorded only when it differs from its default (an option added
after datasets were made, so that those still resume)."""

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
    run: bool = False,
    when_set: bool = False,
) -> Any:
    """A dataclass field with its command-line declaration.

    flag: the flag (default --field-name); parse: text -> value for values that are not plain
    numbers or strings (e.g. a gap distribution's spec); text: value -> the text the help shows as
    the default; env: SYNTH_<ENV> overrides the default (containers); negatable: a --no- form;
    repeat: the flag may be given several times (parse gets the list); run: a run option, never
    in a dataset's record; when_set: in the record only when not the default."""
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
        "run": run,
        "when_set": when_set,
    }
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def setting(default: Any = MISSING, *, factory: Callable[[], Any] | None = None, run: bool = False,
            when_set: bool = False) -> Any:  # fmt: skip
    """A config field without a flag of its own (a nested config, or a value set in code), with
    what it is for: `run` and `when_set` as in `option`."""
    meta = {"run": run, "when_set": when_set}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def is_run_option(f: dataclasses.Field[Any]) -> bool:
    """Whether a field only changes how a run goes (never recorded with a dataset)."""
    return bool(f.metadata.get("run"))


def recorded_fields(value: Any) -> list[tuple[dataclasses.Field[Any], Any]]:
    """(field, value) of a config's options of the dataset: run options left out, and a `when_set`
    option left out while it has its default."""
    out = []
    for f in dataclasses.fields(value):
        if is_run_option(f):
            continue
        v = getattr(value, f.name)
        if f.metadata.get("when_set") and v == default_of(f):
            continue
        out.append((f, v))
    return out


def declared(cls: type) -> list[dataclasses.Field[Any]]:
    """The fields of a config class that have a command-line declaration."""
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


def default_of(f: dataclasses.Field[Any]) -> Any:
    """A field's default (a fresh one from its factory; None where it has neither), to tell a value
    that was set from one that was not."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None
