"""Flags built from the library's option declarations (synth.options): each config field that
declares itself becomes one flag with its help, choices, default and parsing, and parsed
arguments become that config again. A bad value is a usage error (exit 2) naming the flag."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ConfigError
from ..options import declared, default_of


def env(name: str, default: Any) -> Any:
    """A default that an environment variable SYNTH_<NAME> overrides (for containers)."""
    value = os.environ.get(f"SYNTH_{name}")
    if value is None:
        return default
    return (
        type(default)(value) if isinstance(default, (int, float)) and not isinstance(default, bool) else value
    )


def flag_of(f: dataclasses.Field[Any]) -> str:
    """The flag of a declared field: its metadata's `flag`, else --field-name."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def dest_of(f: dataclasses.Field[Any]) -> str:
    """Where argparse keeps a declared field's value: its flag as an identifier."""
    return flag_of(f).lstrip("-").replace("-", "_")


TRUE = ("1", "true", "yes", "on")


def _env_default(f: dataclasses.Field[Any], value: Any) -> Any:
    """SYNTH_<ENV> when set (text: argparse parses it like a typed value); a switch is on for
    1/true/yes/on and off for anything else (SYNTH_LOG_JSON=0 is off)."""
    name = f.metadata.get("env")
    raw = os.environ.get(f"SYNTH_{name}") if name else None
    if raw is None:
        return value
    return raw.strip().lower() in TRUE if str(f.type) == "bool" else raw


def _argument_type(f: dataclasses.Field[Any]) -> Callable[[str], Any] | None:
    """argparse's `type` for a field: its parse function, or int/float from its annotation; a
    ConfigError becomes argparse's error (exit 2, naming the flag)."""
    parse = f.metadata.get("parse")
    if parse is None:
        kind = str(f.type).replace(" ", "")
        parse = int if kind in ("int", "int|None") else float if kind in ("float", "float|None") else None
    if parse is None or f.metadata.get("repeat"):
        return None

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(exc.message) from None
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}") from None

    convert.__name__ = f.name
    return convert


def add_fields(
    group: Any,
    cls: type,
    skip: Iterable[str] = (),
    from_env: bool = False,
    defaults: dict[str, Any] | None = None,
) -> None:
    """One flag per declared field of `cls` (but those in `skip`); `from_env`: SYNTH_<ENV>
    variables override defaults (the server, in containers); `defaults`: this command's own."""
    skip = set(skip)
    for f in declared(cls):
        if f.name in skip:
            continue
        meta = f.metadata
        value = (defaults or {}).get(f.name, default_of(f))
        if from_env:
            value = _env_default(f, value)
        kwargs: dict[str, Any] = {"dest": dest_of(f), "help": meta["help"]}
        if meta.get("metavar"):
            kwargs["metavar"] = meta["metavar"]
        if str(f.type) == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction if meta.get("negatable") else "store_true"
            kwargs["default"] = value if meta.get("negatable") else bool(value)
        elif meta.get("repeat"):
            kwargs.update(action="append", default=list(value or []))
        else:
            text = meta.get("text")
            kwargs["default"] = text(value) if text is not None and value is not None else value
            kwargs["type"] = _argument_type(f)
            if meta.get("choices"):
                kwargs["choices"] = list(meta["choices"])
        group.add_argument(flag_of(f), **kwargs)


def values_of(args: argparse.Namespace, cls: type, skip: Iterable[str] = ()) -> dict[str, Any]:
    """The declared fields of `cls` from parsed arguments (parsed values; repeated flags through
    their parse function)."""
    out = {}
    for f in declared(cls):
        if f.name in skip or not hasattr(args, dest_of(f)):
            continue
        value = getattr(args, dest_of(f))
        if value is None and f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()  # an empty default shown as none (e.g. no --roles)
        parse = f.metadata.get("parse")
        if (
            isinstance(value, str) and parse is not None or f.metadata.get("repeat") and parse is not None
        ):  # a default given as its text
            value = parse(value)
        out[f.name] = value
    return out


def config_from(args: argparse.Namespace, cls: type, skip: Iterable[str] = (), **extra: Any) -> Any:
    """`cls` built from the parsed arguments (and `extra` fields); a ConfigError it raises names
    the field's flag."""
    try:
        return cls(**values_of(args, cls, skip), **extra)
    except ConfigError as exc:
        raise renamed(exc, cls) from None


def renamed(exc: ConfigError, cls: type) -> ConfigError:
    """`exc` naming the flag's dest instead of `cls`'s field (the CLI shows the flag), marked as a
    usage error (a bad option value: exit 2)."""
    for f in declared(cls):
        if f.name == exc.option:
            exc.option = dest_of(f)
    return exc
