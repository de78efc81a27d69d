"""JSONL dialogs, one per line, read lazily:

    {"conversation_id": "shop_001", "turns": [{"speaker": "A", "text": "Hi."}, ...],
     "voices": {"A": "joe-vt090"}, "meta": {...}}

`conversation_id` is optional (derived from the file name and line number); `turns` may also be a
list of plain strings, spoken alternately by speakers A and B."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from ...domain import Dialog, Source
from ...errors import DialogError
from ...ids import derived_id
from ..build import DEFAULT_LIMITS, DialogLimits, build_dialog

_KEYS = {"conversation_id", "turns", "voices", "meta", "metadata"}
MAX_LINE_BYTES = 8 * 1024 * 1024  # one dialog; a longer line is rejected without being held whole
_TURN_KEYS = {"speaker", "text"}


def read_jsonl(
    path: Path, limits: DialogLimits = DEFAULT_LIMITS, id_prefix: str | None = None
) -> Iterator[Dialog | DialogError]:
    """Yield a Dialog per non-blank line, or the DialogError that names the line and field."""
    prefix = id_prefix or path.stem
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(_lines(fh), start=1):
            if raw is None:
                yield DialogError(f"line is longer than {MAX_LINE_BYTES} bytes", f"{path} line {lineno}")
                continue
            if not raw.strip():
                continue
            source = Source(dataset="jsonl", path=str(path), line=lineno)
            try:
                yield parse_record(raw, source, derived_id(prefix, lineno), limits)
            except DialogError as exc:
                yield exc


def _lines(fh: BinaryIO) -> Iterator[bytes | None]:
    """Lines of a binary file; None for a line over MAX_LINE_BYTES (its bytes are skipped)."""
    while True:
        line = fh.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = fh.readline(MAX_LINE_BYTES)
            yield None
            continue
        yield line


def parse_record(
    raw: bytes | str, source: Source, default_id: str, limits: DialogLimits = DEFAULT_LIMITS
) -> Dialog:
    """One JSON record (bytes or text) into a Dialog, with errors naming the field."""
    where = source.describe()
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
    except UnicodeDecodeError as exc:
        raise DialogError(f"invalid UTF-8 at byte {exc.start}", where) from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DialogError(_json_problem(text, exc), where, "", _visible_id(text)) from None
    return dialog_from_dict(record, source, default_id, limits)


def _json_problem(text: str, exc: json.JSONDecodeError) -> str:
    """What is wrong with a line that is not JSON, at the column where it goes wrong (for a cut
    line: where the line ends, before the record is complete)."""
    end = len(text.rstrip("\r\n"))
    if exc.pos >= end or exc.msg.startswith("Unterminated string"):
        return f"invalid JSON: the line ends at column {end + 1} before the record is complete ({exc.msg}; a cut line?)"
    return f"invalid JSON at column {exc.colno}: {exc.msg}"


_ID_IN_TEXT = re.compile(r'"conversation_id"\s*:\s*"([A-Za-z0-9][A-Za-z0-9._-]{0,127})"')


def _visible_id(text: str) -> str:
    """The conversation id a broken line still shows, so its failure can name it."""
    m = _ID_IN_TEXT.search(text)
    return m.group(1) if m else ""


def dialog_from_dict(
    record: Any, source: Source, default_id: str, limits: DialogLimits = DEFAULT_LIMITS
) -> Dialog:
    """A Dialog from one JSONL record (the layout above); a DialogError naming the dialog and the
    field for anything else."""
    where = source.describe()
    if not isinstance(record, dict):
        raise DialogError(f"expected a JSON object, got {type(record).__name__}", where)
    unknown = sorted(set(record) - _KEYS)
    if unknown:
        raise DialogError(f"unknown field(s) {unknown}; allowed: {sorted(_KEYS)}", where)
    cid = record.get("conversation_id")
    if cid is None:
        cid = default_id
    try:
        turns = record.get("turns")
        if not isinstance(turns, list):
            raise DialogError("missing or not a list", where, "turns")
        voices = record.get("voices") or {}
        if not isinstance(voices, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in voices.items()
        ):
            raise DialogError("must map speaker names to voice ids", where, "voices")
        pairs = [_turn_pair(t, i, where) for i, t in enumerate(turns)]
    except DialogError as exc:  # the failure names the dialog it belongs to
        exc.conversation_id = exc.conversation_id or (cid if isinstance(cid, str) else "")
        raise
    src = Source(**{**source.to_dict(), "original_id": str(cid)})
    return build_dialog(pairs, cid, src, voices, limits)


def _turn_pair(turn: Any, i: int, where: str) -> tuple[Any, Any]:
    if isinstance(turn, str):
        return ("A" if i % 2 == 0 else "B", turn)
    if not isinstance(turn, dict):
        raise DialogError("must be an object with speaker and text, or a string", where, f"turns[{i}]")
    unknown = sorted(set(turn) - _TURN_KEYS)
    if unknown:
        raise DialogError(f"unknown field(s) {unknown}", where, f"turns[{i}]")
    if "text" not in turn:
        raise DialogError("missing", where, f"turns[{i}].text")
    return (turn.get("speaker", "A" if i % 2 == 0 else "B"), turn["text"])
