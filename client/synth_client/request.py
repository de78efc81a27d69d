"""The Synthesize request, built from a dialog in any of the shapes the clients take."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .v1 import synth_pb2 as pb

FORMATS = {
    None: pb.SAMPLE_FORMAT_UNSPECIFIED,
    "chat": pb.SAMPLE_FORMAT_CHAT,
    "transcribe": pb.SAMPLE_FORMAT_TRANSCRIBE,
}

# A dialog: [("A", "Hi."), ...], [{"speaker": "A", "text": "Hi."}, ...], {"conversation_id": ...,
# "turns": [...]} or any object with `turns` (speaker/text attributes) and `conversation_id`.
DialogLike = Sequence[Any] | Mapping[str, Any] | Any


def _turn_pairs(turns: Iterable[Any]) -> list[tuple[str, str]]:
    out = []
    for i, t in enumerate(turns):
        if isinstance(t, str):
            out.append(("A" if i % 2 == 0 else "B", t))
        elif isinstance(t, (tuple, list)):
            out.append((str(t[0]), str(t[1])))
        elif isinstance(t, Mapping):
            out.append((str(t.get("speaker", "A" if i % 2 == 0 else "B")), str(t.get("text", ""))))
        else:
            out.append((t.speaker, t.text))
    return out


def build_request(
    dialog: DialogLike,
    voices: Mapping[str, str] | None = None,
    conversation_id: str | None = None,
    seed: int | None = None,
    sample_format: str | None = None,
    stream_only: bool = False,
) -> pb.SynthesizeRequest:
    """A SynthesizeRequest from a dialog in any shape DialogLike takes; `voices` and
    `conversation_id` given here override the dialog's own."""
    if isinstance(dialog, Mapping):
        cid = conversation_id or dialog.get("conversation_id") or ""
        turns = dialog.get("turns", [])
        voices = {**dict(dialog.get("voices") or {}), **dict(voices or {})}
    elif hasattr(dialog, "turns"):
        cid = conversation_id or getattr(dialog, "conversation_id", "") or ""
        turns = dialog.turns
        voices = {**dict(getattr(dialog, "voices", {}) or {}), **dict(voices or {})}
    else:
        cid, turns = conversation_id or "", dialog
    if sample_format not in FORMATS:
        raise ValueError(f"sample_format {sample_format!r}: choose chat or transcribe")
    request = pb.SynthesizeRequest(
        conversation_id=cid,
        turns=[pb.Turn(speaker=s, text=t) for s, t in _turn_pairs(turns)],
        voices=dict(voices or {}),
        sample_format=FORMATS[sample_format],
        stream_only=stream_only,
    )
    if seed is not None:
        request.seed = seed
    return request
