"""What the server sends back, decoded: the typed events of a Synthesize or GetConversation
stream (joined from their chunks) and ListVoices' voices as plain dicts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .v1 import synth_pb2 as pb


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
