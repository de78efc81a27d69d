"""Typed events of a Synthesize stream, and the request builder shared by the sync and asyncio
clients. Needs only grpcio and protobuf."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from .v1 import synth_pb2 as pb

RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
FORMATS = {
    None: pb.SAMPLE_FORMAT_UNSPECIFIED,
    "chat": pb.SAMPLE_FORMAT_CHAT,
    "transcribe": pb.SAMPLE_FORMAT_TRANSCRIBE,
}

# A dialog: [("A", "Hi."), ...], [{"speaker": "A", "text": "Hi."}, ...], {"conversation_id": ...,
# "turns": [...]} or any object with `turns` (speaker/text attributes) and `conversation_id`.
DialogLike = Sequence[Any] | Mapping[str, Any] | Any


@dataclass(frozen=True)
class TurnEvent:
    """One synthesized turn: its complete WAV file (16 kHz mono PCM16) and its timing."""

    turn_id: int
    speaker: str
    voice: str
    transcript: str
    duration_sec: float
    start_time: float
    end_time: float
    wav: bytes


@dataclass(frozen=True)
class SummaryEvent:
    """The end of a stream: the conversation's metadata, manifest line and server folder."""

    conversation_id: str
    metadata: dict[str, Any]
    manifest_line: dict[str, Any]
    path: str
    written: bool
    samples_jsonl: str = ""
    # the folder's other files as the server wrote them: event_<k>.wav, conversation.wav, and for
    # a written conversation its records (metadata.json, samples.jsonl, the transcripts) and its
    # integrity record, integrity.json (what a copy is checked against)
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def samples(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.samples_jsonl.splitlines() if line.strip()]


@dataclass
class Backoff:
    """Exponential backoff with full jitter for UNAVAILABLE and RESOURCE_EXHAUSTED."""

    attempts: int = 8
    initial: float = 0.2
    maximum: float = 8.0
    multiplier: float = 2.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0, min(self.maximum, self.initial * self.multiplier**attempt))


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


def voice_dict(v: pb.Voice) -> dict[str, Any]:
    """A ListVoices entry as a plain dict (params and meta decoded from JSON)."""
    return {
        "id": v.id,
        "engine": v.engine,
        "model": v.model,
        "speaker": v.speaker,
        "params": json.loads(v.params_json or "{}"),
        "meta": json.loads(v.meta_json or "{}"),
    }


class EventAssembler:
    """Joins the WAV chunks of each turn; emits a TurnEvent when a turn's last chunk arrives, and
    the SummaryEvent with the conversation's other files (joined from their chunks)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._files: dict[str, list[bytes]] = {}

    def feed(self, message: pb.SynthesizeResponse) -> TurnEvent | SummaryEvent | None:
        if message.HasField("file"):
            self._files.setdefault(message.file.name, []).append(message.file.data_chunk)
            return None
        if message.HasField("summary"):
            s = message.summary
            files, self._files = {name: b"".join(parts) for name, parts in self._files.items()}, {}
            return SummaryEvent(
                s.conversation_id,
                json.loads(s.metadata_json or "{}"),
                json.loads(s.manifest_line_json or "{}"),
                s.path,
                s.written,
                s.samples_jsonl,
                files,
            )
        t = message.turn
        self._chunks.append(t.wav_chunk)
        if not t.last_chunk:
            return None
        wav, self._chunks = b"".join(self._chunks), []
        return TurnEvent(
            t.turn_id, t.speaker, t.voice, t.transcript, t.duration_sec, t.start_time, t.end_time, wav
        )
