"""Turning raw records into checked Dialogs: one place for the rules every source shares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..domain import Dialog, Source, Turn
from ..errors import DialogError, InvalidConversationId
from ..ids import check_conversation_id
from ..options import option
from .text import clean_text, is_speakable


@dataclass(frozen=True)
class DialogLimits:
    """Bounds on one dialog, so one record cannot exhaust memory or time."""

    max_turns: int = option(1000, env="MAX_TURNS", help="reject dialogs with more turns")
    max_turn_chars: int = option(5000, env="MAX_TURN_CHARS", help="reject turns with more characters")
    max_total_chars: int = option(
        200_000, env="MAX_TOTAL_CHARS", help="reject dialogs with more characters in all"
    )
    max_speakers: int = 16


DEFAULT_LIMITS = DialogLimits()


def build_dialog(
    turns: Iterable[tuple[Any, Any]],
    conversation_id: Any,
    source: Source,
    voices: Mapping[str, str] | None = None,
    limits: DialogLimits = DEFAULT_LIMITS,
    clean: bool = True,
) -> Dialog:
    """Validate and clean `(speaker, text)` pairs into a Dialog, or raise DialogError naming the
    turn. Checks: id is path-safe, at least one turn, every speaker a non-empty string, every text
    a string with something speakable after cleanup, and the size limits."""
    where = source.describe()
    try:
        cid = check_conversation_id(conversation_id)
    except InvalidConversationId as exc:
        raise DialogError(str(exc), where, "conversation_id") from None
    out: list[Turn] = []
    total = 0
    for i, (speaker, text) in enumerate(turns):
        field = f"turns[{i}]"
        if i >= limits.max_turns:
            raise DialogError(f"more than {limits.max_turns} turns", where, "turns", cid)
        if not isinstance(speaker, str) or not speaker.strip():
            raise DialogError("speaker must be a non-empty string", where, f"{field}.speaker", cid)
        if len(speaker) > 64:
            raise DialogError("speaker is longer than 64 characters", where, f"{field}.speaker", cid)
        if not isinstance(text, str):
            raise DialogError(
                f"text must be a string, got {type(text).__name__}", where, f"{field}.text", cid
            )
        if len(text) > limits.max_turn_chars:
            raise DialogError(
                f"text has {len(text)} characters, the limit is {limits.max_turn_chars}",
                where,
                f"{field}.text",
                cid,
            )
        total += len(text)
        if total > limits.max_total_chars:
            raise DialogError(
                f"dialog has more than {limits.max_total_chars} characters", where, "turns", cid
            )
        cleaned = clean_text(text) if clean else text.strip()
        if not cleaned:
            raise DialogError("text is empty or whitespace only", where, f"{field}.text", cid)
        if not is_speakable(cleaned):
            raise DialogError(
                f"text {cleaned[:40]!r} has no speakable characters (no letter or digit)",
                where,
                f"{field}.text",
                cid,
            )
        out.append(Turn(speaker=speaker.strip(), text=cleaned))
    if not out:
        raise DialogError("dialog has no turns", where, "turns", cid)
    dialog = Dialog(conversation_id=cid, turns=tuple(out), source=source, voices=dict(voices or {}))
    if len(dialog.speakers) > limits.max_speakers:
        raise DialogError(
            f"{len(dialog.speakers)} speakers, the limit is {limits.max_speakers}", where, "turns", cid
        )
    return dialog
