"""Where the library's log records go when synth runs as a command: set once, at the entry, for
every command. The library only logs (`logging.getLogger(__name__)` under `synth`); a Python
program using it configures logging its own way, or gets Python's default (warnings and errors
on stderr)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TextIO

__all__ = ["HumanFormatter", "JsonFormatter", "configure_logging"]

# the library's loggers (synth_server writes its own lines: `synth serve --log-json`)
LOGGERS = ("synth",)


class HumanFormatter(logging.Formatter):
    """`error: WHERE: what` (warnings and errors, as a person reads them), the message alone for
    information, and the logger's name too when verbose."""

    def __init__(self, verbose: int = 0):
        super().__init__()
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and self.verbose:
            message += "\n" + self.formatException(record.exc_info)
        if self.verbose:
            return f"{record.levelname.lower()}: {record.name}: {message}"
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


class JsonFormatter(logging.Formatter):
    """One JSON object a line (for log collectors): time, level, logger, message, and the
    record's `fields` (logger.info(..., extra={"fields": {...}}))."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update({k: v for k, v in fields.items() if k not in out})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(json_lines: bool = False, verbose: int = 0, stream: TextIO | None = None) -> None:
    """Send the library's records to stderr: human lines, or JSON lines with `json_lines`;
    warnings and errors, information too with `verbose` 1, debug with 2. Calling it again
    replaces what it set."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else HumanFormatter(verbose))
    handler.set_name("synth-cli")
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if h.get_name() == "synth-cli"]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
        logger.propagate = False
