"""Torn manifest lines: a kill during an append, or an undo that failed on a full disk, can
leave a line cut short or a fragment glued in front of the next line. The writer repairs them
under its lock wherever they are, by whichever writer meets them first; this module says what a
whole line is and what the manifest is without its torn ones (pure functions over bytes)."""

from __future__ import annotations

import json

__all__ = ["entry_id", "repair_manifest_lines"]


def repair_manifest_lines(data: bytes) -> tuple[bytes, list[int], bool]:
    """The manifest with every torn line dropped: (repaired bytes, numbers of the lines dropped,
    whether an unterminated tail was cut). A line is kept when it is a JSON object with a
    conversation_id; a fragment glued in front of a whole line keeps the whole line."""
    out: list[bytes] = []
    dropped: list[int] = []
    body, cut = data, False
    if data and not data.endswith(b"\n"):
        body, cut = data[: data.rfind(b"\n") + 1], True
    for n, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        good = entry_line(line)
        if good is None:
            start = line.rfind(b'{"conversation_id"')
            good = entry_line(line[start:]) if start > 0 else None
            dropped.append(n)
        if good is not None:
            out.append(good + b"\n")
    return b"".join(out), dropped, cut


def entry_id(line: bytes) -> str | None:
    """The conversation id of a whole manifest line, None for a torn or foreign one."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    cid = obj.get("conversation_id") if isinstance(obj, dict) else None
    return cid if isinstance(cid, str) else None


def entry_line(line: bytes) -> bytes | None:
    """A whole manifest line as it is, None for a torn or foreign one."""
    return line if entry_id(line) is not None else None
