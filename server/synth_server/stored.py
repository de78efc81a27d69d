"""GetConversation's reading of a finished conversation: every file through the reader's one
path rule (a plain file name inside the conversation's own folder, no symbolic link followed),
the folder checked against its integrity record before anything is sent, and each file read and
sent one chunk at a time (a call holds one chunk in memory, however long the conversation)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import grpc

from synth.dataset.integrity import INTEGRITY_FILE, read_record
from synth.dataset.integrity import problems as integrity_problems
from synth.dataset.reader import ConversationRef
from synth.dataset.records import (
    CONVERSATIONS_DIR,
    SAMPLES_FILE,
    ConversationMetadata,
    ManifestEntry,
    is_plain_file_name,
)
from synth.errors import InvalidConversationId, RequestError, Unreadable
from synth.ids import check_conversation_id, conversation_dir
from synth_client.v1 import synth_pb2 as pb

from .logs import CallLog
from .messages import CHUNK_BYTES, extra_file_fields, stored_turn_head, summary_message


def checked_id(conversation_id: str) -> str:
    """A request's conversation id as the dataset accepts it (synth.ids), or INVALID_ARGUMENT naming
    the field: it becomes a folder name, so nothing else may pass."""
    try:
        return check_conversation_id(conversation_id)
    except InvalidConversationId as exc:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"conversation_id: {exc}") from None


def open_plain(path: Path) -> int:
    """A read-only descriptor of a regular file, refusing a symbolic link at the last component
    (O_NOFOLLOW) and anything that is not a plain file (a FIFO would block the call forever)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Unreadable(f"{path.name}: not a plain file")
    return fd


def file_chunks(path: Path) -> Iterator[tuple[bytes, bool]]:
    """(chunk, last) pairs of a file, CHUNK_BYTES at a time; one empty chunk for an empty file."""
    fd = open_plain(path)
    with os.fdopen(fd, "rb") as fh:
        chunk = fh.read(CHUNK_BYTES)
        while True:
            following = fh.read(CHUNK_BYTES) if chunk else b""
            yield chunk, not following
            if not following:
                return
            chunk = following


def stored_messages(
    root: Path, conversation_id: str, listed: bool, call: CallLog
) -> Iterator[pb.SynthesizeResponse]:
    """A listed conversation as Synthesize streamed it: turns, then events' audio and
    conversation.wav, then the summary. Raises Unreadable before the first message when the folder
    is not what was written, and (rarely) after some, when a file changes while it is sent."""
    if not listed:
        raise RequestError(
            grpc.StatusCode.NOT_FOUND, f"conversation {conversation_id!r} is not in the dataset"
        )
    if (root / CONVERSATIONS_DIR / conversation_id).is_symlink():
        raise Unreadable(f"{CONVERSATIONS_DIR}/{conversation_id} is a symbolic link; it is not followed")
    folder = conversation_dir(root, conversation_id)
    ref = ConversationRef(conversation_id, folder, ManifestEntry(conversation_id, "", 0, 0.0))
    meta = ref.metadata()
    turns = ref.turns(meta)
    files = [(ref.file(t.audio_file, f"turn {t.turn_id} audio_file"), t) for t in turns]
    extras = [ref.file(name, field) for name, field in extra_file_fields(meta)]
    damage = integrity_problems(folder)
    if damage:
        raise Unreadable(f"not what was written: {'; '.join(damage[:3])}")
    samples = ref.samples() if (folder / SAMPLES_FILE).exists() else None
    for path, turn in files:
        call.turns += 1
        call.audio_sec += turn.duration_sec
        head = stored_turn_head(turn)
        for i, (chunk, last) in enumerate(file_chunks(path)):
            message = pb.TurnAudio()
            message.CopyFrom(head)
            message.wav_chunk, message.chunk_index, message.last_chunk = chunk, i, last
            yield pb.SynthesizeResponse(turn=message)
    for path in extras:
        yield from stored_file_messages(path)
    yield from record_messages(folder, {p.name for p, _ in files} | {p.name for p in extras})
    yield summary_message(meta, ManifestEntry.from_metadata(meta), written=True, samples=samples)


def record_messages(folder: Path, sent: set[str]) -> Iterator[pb.SynthesizeResponse]:
    """The rest of what the folder's integrity record lists (metadata.json, samples.jsonl, the
    transcripts), as written, then the record itself (integrity.json), so that a copy (`synth
    batch --out`) keeps the server's record and is checked against it rather than sealed anew.
    Nothing for a conversation written before records existed."""
    try:
        listed = read_record(folder)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Unreadable(f"{INTEGRITY_FILE} is unreadable ({exc})") from None
    if listed is None:
        return
    for name in sorted(set(listed["files"]) - sent):
        if not is_plain_file_name(name):
            raise Unreadable(f"{INTEGRITY_FILE} lists {name!r}, not a file of the folder")
        yield from stored_file_messages(folder / name)
    yield from stored_file_messages(folder / INTEGRITY_FILE)


def stored_file_messages(path: Path) -> Iterator[pb.SynthesizeResponse]:
    """A conversation file that is not a turn (event audio, conversation.wav), in chunks."""
    for i, (chunk, last) in enumerate(file_chunks(path)):
        yield pb.SynthesizeResponse(
            file=pb.ConversationFile(name=path.name, data_chunk=chunk, chunk_index=i, last_chunk=last)
        )


def written_files(folder: Path, meta: ConversationMetadata) -> Iterator[pb.SynthesizeResponse]:
    """Synthesize's tail: the events' audio and conversation.wav of the folder it just wrote,
    then its other files and its integrity record (record_messages)."""
    ref = ConversationRef(meta.conversation_id, folder, ManifestEntry(meta.conversation_id, "", 0, 0.0))
    extras = [ref.file(name, field) for name, field in extra_file_fields(meta)]
    for path in extras:
        yield from stored_file_messages(path)
    turns = {t.audio_file for t in meta.turns if t.audio_file}
    yield from record_messages(folder, turns | {p.name for p in extras})


def without_root(message: str, root: Path) -> str:
    """An error message for a client: the server's own folders left out of the paths it names."""
    for prefix in {str(root.resolve()), str(root)}:
        message = message.replace(prefix + os.sep, "").replace(prefix, ".")
    return message
