"""Conversation ids: they become folder names, so ids from input are untrusted and checked here."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import InvalidConversationId

MAX_ID_LENGTH = 128
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SLUG_STRIP = re.compile(r"[^A-Za-z0-9]+")


def check_conversation_id(value: object) -> str:
    """Return `value` if it is a safe folder name; raise InvalidConversationId saying why.

    Allowed: letters, digits, '.', '_', '-', starting with a letter or digit, at most 128
    characters. That excludes '/', '\\', '..', absolute paths, hidden names and control bytes."""
    if not isinstance(value, str):
        raise InvalidConversationId(f"conversation_id must be a string, got {type(value).__name__}")
    if not value:
        raise InvalidConversationId("conversation_id is empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidConversationId(f"conversation_id is longer than {MAX_ID_LENGTH} characters")
    if not _SAFE_ID.fullmatch(value) or ".." in value:
        raise InvalidConversationId(
            f"conversation_id {value[:60]!r} is not allowed: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, with no '..'"
        )
    return value


def slug(text: str) -> str:
    """A lower-case id fragment from free text (a file name, a dataset name)."""
    return _SLUG_STRIP.sub("_", text).strip("_").lower() or "dialogs"


def derived_id(prefix: str, index: int, split: str | None = None) -> str:
    """Stable id from where a dialog sits in its source: `dailydialog_train_000042`."""
    parts = [slug(prefix)] + ([slug(split)] if split else []) + [f"{index:06d}"]
    return "_".join(parts)


def conversation_dir(root: Path, conversation_id: str) -> Path:
    """The folder of a conversation under `root`: a checked id is one plain name, so the path is
    directly inside `<root>/conversations` (the name itself is not resolved: a symbolic link
    there is refused by the readers and replaced by the writer, never followed out)."""
    check_conversation_id(conversation_id)
    return (root / "conversations").resolve() / conversation_id
