"""One log line per call, as key=value pairs or one JSON object. Values come from clients (ids,
messages), so every value that is not a plain token is quoted with its control characters
escaped: a newline inside a request can never start a line of its own."""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

LOG = logging.getLogger("synth_server")
_PLAIN = re.compile(r"[A-Za-z0-9._:/@+\-]+")
MAX_VALUE_CHARS = 200  # a client's string is cut to this in a log line


@dataclass
class CallLog:
    """What one call did, for its log line. `conversation_id` is set only once it was checked;
    `note` says why a call ended early when its code alone does not (e.g. a client that stopped
    reading)."""

    began: float
    method: str
    conversation_id: str = ""
    turns: int = 0
    audio_sec: float = 0.0
    note: str = ""


def kv_value(value: Any) -> str:
    """`value` as one key=value token: plain tokens as they are, anything else JSON-quoted."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + "..."
    return text if _PLAIN.fullmatch(text) else json.dumps(text, ensure_ascii=True)


def format_record(record: dict[str, Any], as_json: bool) -> str:
    """A log record as one line: a JSON object, or key=value pairs with client values quoted."""
    if as_json:
        return json.dumps(record, ensure_ascii=True)
    return " ".join(f"{key}={kv_value(value)}" for key, value in record.items())


def log_call(call: CallLog, code: str, as_json: bool) -> None:
    """Log a finished call's line: method, conversation id, status code, turns, audio seconds and
    latency."""
    record: dict[str, Any] = {
        "method": call.method,
        "conversation_id": call.conversation_id,
        "code": code,
        "turns": call.turns,
        "audio_sec": round(call.audio_sec, 3),
        "latency_sec": round(time.perf_counter() - call.began, 3),
    }
    if call.note:
        record["note"] = call.note
    LOG.info(format_record(record, as_json))


def log_event(level: int, message: str, as_json: bool, **fields: Any) -> None:
    """A server event (start, a warning, a write failure) in the same format as the call lines."""
    record = {"event": message, **fields}
    if as_json:
        record = {"level": logging.getLevelName(level).lower(), **record}
    LOG.log(level, format_record(record, as_json))
