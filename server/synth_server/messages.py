"""Protobuf request <-> domain objects, with the checks that give each bad request its status
code and a message naming the field or turn."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import grpc
from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet

from synth.audio import wav_bytes
from synth.dataset.records import ConversationMetadata, ManifestEntry, TurnRecord, samples_jsonl
from synth.dialogs.build import DialogLimits, build_dialog
from synth.domain import Dialog, Source, SynthesizedTurn, Voice
from synth.errors import DialogError, RequestError  # RequestError: re-exported here
from synth.produce.casting import is_attribute_request
from synth_client.v1 import synth_pb2 as pb

CHUNK_BYTES = 1 << 20  # 1 MiB of WAV per message: far below gRPC's 4 MB default
FORMATS = {
    pb.SAMPLE_FORMAT_UNSPECIFIED: "chat",
    pb.SAMPLE_FORMAT_CHAT: "chat",
    pb.SAMPLE_FORMAT_TRANSCRIBE: "transcribe",
}


def unknown_fields(message: Message, path: str = "") -> list[str]:
    """Field numbers the server's contract does not know, anywhere in the message. A map entry or
    sub-message holding an unknown field is not parsed into its known field at all (it arrives
    as an unknown field with the known field's number), so its bytes are read to name the
    unknown number inside it ('voices: field number 5')."""
    here = path or message.DESCRIPTOR.name
    found = []
    for f in UnknownFieldSet(message):
        known = message.DESCRIPTOR.fields_by_number.get(f.field_number)
        inner = _field_numbers(f.data) if known is not None and isinstance(f.data, bytes) else None
        if known is not None and known.message_type is not None and inner is not None:
            expected = set(known.message_type.fields_by_number)
            extra = sorted(set(inner) - expected)
            where = f"{path + '.' if path else ''}{known.name}"
            found += [f"{where}: field number {n}" for n in extra] or [f"{where}: a malformed entry"]
        else:
            found.append(f"{here}: field number {f.field_number}")
    for field, value in message.ListFields():
        if field.message_type is None or field.message_type.GetOptions().map_entry:
            continue
        repeated = field.is_repeated
        items = value if repeated else [value]
        for i, item in enumerate(items):
            sub = f"{path + '.' if path else ''}{field.name}" + (f"[{i}]" if repeated else "")
            found += unknown_fields(item, sub)
    return found


def _field_numbers(data: bytes) -> list[int] | None:
    """The field numbers of a serialized message's top level, or None if it is not one."""
    numbers, i = [], 0

    def varint() -> int:
        nonlocal i
        value = shift = 0
        while True:
            if i >= len(data) or shift > 63:
                raise ValueError
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    try:
        while i < len(data):
            tag = varint()
            number, wire = tag >> 3, tag & 7
            numbers.append(number)
            if wire == 0:
                varint()
            elif wire == 1:
                i += 8
            elif wire == 2:
                length = varint()  # read before `i` is used: varint() moves it
                i += length
            elif wire == 5:
                i += 4
            else:
                return None
            if i > len(data):
                return None
    except ValueError:
        return None
    return numbers


def derived_conversation_id(request: pb.SynthesizeRequest) -> str:
    """Stable id from the content, so that a retried request maps to the same conversation."""
    h = hashlib.sha256()
    for turn in request.turns:
        h.update(turn.speaker.encode() + b"\x00" + turn.text.encode() + b"\x01")
    return f"req_{h.hexdigest()[:20]}"


def request_to_dialog(request: pb.SynthesizeRequest, limits: DialogLimits, voice_ids: set[str]) -> Dialog:
    """A Synthesize request as a checked Dialog, or a RequestError with its status code naming the
    field or turn at fault (unknown fields, too many turns, an unknown voice, a bad turn)."""
    unknown = unknown_fields(request)
    if unknown:
        raise RequestError(
            grpc.StatusCode.INVALID_ARGUMENT, f"unknown field(s) in the request: {', '.join(unknown)}"
        )
    if len(request.turns) > limits.max_turns:
        raise RequestError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"turns: {len(request.turns)} turns, the limit is {limits.max_turns}",
        )
    for speaker, voice in request.voices.items():
        if voice not in voice_ids and not is_attribute_request(voice):  # gender:female asks by attribute
            raise RequestError(
                grpc.StatusCode.NOT_FOUND, f"voices[{speaker!r}]: unknown voice {voice!r} (see ListVoices)"
            )
    cid = request.conversation_id or derived_conversation_id(request)
    try:
        return build_dialog(
            [(t.speaker or ("A" if i % 2 == 0 else "B"), t.text) for i, t in enumerate(request.turns)],
            cid,
            Source(dataset="grpc", original_id=request.conversation_id or None),
            dict(request.voices),
            limits,
        )
    except DialogError as exc:
        field = f"{exc.field}: " if exc.field else ""
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}{exc.message}") from None


def turn_messages(turn: SynthesizedTurn) -> list[pb.SynthesizeResponse]:
    """A synthesized turn as Synthesize streams it: its fields and its WAV, in chunks."""
    return wav_messages(
        pb.TurnAudio(
            turn_id=turn.turn_id,
            speaker=turn.speaker,
            voice=turn.voice.id,
            transcript=turn.text,
            duration_sec=turn.duration_sec,
            start_time=turn.start_time,
            end_time=turn.end_time,
        ),
        wav_bytes(turn.audio, turn.sample_rate),
    )


def stored_turn_head(turn: TurnRecord) -> pb.TurnAudio:
    """The fields of a turn already on disk, as Synthesize streamed them (without its WAV)."""
    return pb.TurnAudio(
        turn_id=turn.turn_id,
        speaker=turn.speaker,
        voice=turn.voice or "",
        transcript=turn.text or "",
        duration_sec=turn.duration_sec,
        start_time=turn.start_time,
        end_time=turn.end_time,
    )


def wav_messages(head: pb.TurnAudio, data: bytes) -> list[pb.SynthesizeResponse]:
    """A turn's WAV in chunks far below gRPC's 4 MB message limit, each with the turn's fields."""
    chunks = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]
    out = []
    for i, chunk in enumerate(chunks):
        message = pb.TurnAudio()
        message.CopyFrom(head)
        message.wav_chunk, message.chunk_index, message.last_chunk = chunk, i, i == len(chunks) - 1
        out.append(pb.SynthesizeResponse(turn=message))
    return out


def extra_file_fields(metadata: ConversationMetadata) -> list[tuple[str, str]]:
    """The files of a conversation besides its turns and records (events' audio, the
    conversation audio), each with the metadata field that names it."""
    names = [(e.audio_file, f"events[{i}].audio_file") for i, e in enumerate(metadata.events) if e.audio_file]
    if metadata.conversation_audio:
        names.append((metadata.conversation_audio, "conversation_audio"))
    return names


def summary_message(
    metadata: ConversationMetadata, entry: ManifestEntry, written: bool, samples: list[dict[str, Any]] | None
) -> pb.SynthesizeResponse:
    """The message that ends a conversation's stream: its metadata, manifest line and samples, and
    the folder's path only where it was written."""
    return pb.SynthesizeResponse(
        summary=pb.ConversationSummary(
            conversation_id=metadata.conversation_id,
            metadata_json=json.dumps(metadata.to_dict(), ensure_ascii=False),
            manifest_line_json=json.dumps(entry.to_dict(), ensure_ascii=False),
            path=entry.path if written else "",
            written=written,
            samples_jsonl=samples_jsonl(samples or []),
        )
    )


def voice_message(voice: Voice) -> pb.Voice:
    """A catalog voice as ListVoices returns it (its params and meta as JSON)."""
    return pb.Voice(
        id=voice.id,
        engine=voice.engine,
        model=voice.model,
        speaker=voice.speaker,
        params_json=json.dumps(dict(voice.params)),
        meta_json=json.dumps(dict(voice.meta)),
    )
