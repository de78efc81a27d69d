"""Lhotse's manifests (recordings, supervisions, cuts), written without lhotse (JSONL, optionally
gzipped, the layout `lhotse.load_manifest` reads).

Two levels. Per turn (default): a recording, supervision and MonoCut per turn, its WAV the
recording. Per conversation (`conversations=True`): one two-channel recording per conversation
(its conversation.wav, or one mixed into the export folder when the dataset has none), a
supervision per turn on its speaker's channel at its place on the timeline, and one MultiCut;
the way Lhotse's recipes hold conversational corpora (Fisher, Switchboard).

Every supervision carries the text and speaker; in `custom` the conversation id, turn number,
speaker index, voice and the turn's place on the conversation timeline; and, when the dataset
has word timings, `alignment: {"word": [[word, start, duration], ...]}` relative to its
recording."""

from __future__ import annotations

import gzip as gz
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf

from ..audio import SAMPLE_RATE
from ..dataset.mixdown import channel_layout, placements, write_mix
from ..dataset.reader import ConversationRef, open_dataset
from ..dataset.records import TurnRecord
from .rows import turn_rows

KINDS = ("recordings", "supervisions", "cuts")
AUDIO_DIR = "audio"


@dataclass(frozen=True)
class LhotseOptions:
    gzip: bool = field(default=False, metadata={"help": "lhotse: write *.jsonl.gz manifests"})
    conversations: bool = field(
        default=False,
        metadata={
            "help": "lhotse: one two-channel recording and MultiCut per conversation (its "
            "conversation.wav, mixed into the export when absent), supervisions on the timeline"
        },
    )


def _alignment(turn: TurnRecord, offset: float) -> dict[str, Any]:
    if turn.words is None:
        return {}
    items = [[w["word"], round(w["start"] - offset, 6), round(w["end"] - w["start"], 6)] for w in turn.words]
    return {"alignment": {"word": items}}


def _supervision(
    uid: str,
    recording_id: str,
    ref: ConversationRef,
    turn: TurnRecord,
    speaker_id: int,
    start: float,
    channel: int,
) -> dict[str, Any]:
    return {
        "id": uid,
        "recording_id": recording_id,
        "start": start,
        "duration": turn.duration_sec,
        "channel": channel,
        "text": turn.text,
        "speaker": turn.speaker,
        "custom": {
            "conversation_id": ref.conversation_id,
            "turn_number": turn.turn_id,
            "speaker_id": speaker_id,
            "voice": turn.voice,
            "conversation_start": turn.start_time,
            "conversation_end": turn.end_time,
        },
        **_alignment(turn, turn.start_time - start),
    }


def _recording(uid: str, path: Path, channels: int, num_samples: int, rate: int) -> dict[str, Any]:
    return {
        "id": uid,
        "sources": [{"type": "file", "channels": list(range(channels)), "source": str(path.resolve())}],
        "sampling_rate": rate,
        "num_samples": num_samples,
        "duration": num_samples / rate,
        "channel_ids": list(range(channels)),
    }


def _per_turn(
    refs: list[ConversationRef],
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]]:
    for ref, turn, sample, _target in turn_rows(refs):
        uid = f"{ref.conversation_id}-turn_{turn.turn_id}"
        num_samples = (
            turn.num_samples if turn.num_samples is not None else round(turn.duration_sec * SAMPLE_RATE)
        )
        recording = _recording(uid, ref.folder / turn.audio_file, 1, num_samples, SAMPLE_RATE)
        supervision = _supervision(uid, uid, ref, turn, int(sample["speaker_id"]), 0.0, 0)
        supervision["duration"] = recording["duration"]
        cut = {
            "id": uid,
            "start": 0.0,
            "duration": recording["duration"],
            "channel": 0,
            "supervisions": [supervision],
            "recording": recording,
            "custom": {"conversation_id": ref.conversation_id, "turn_number": turn.turn_id},
            "type": "MonoCut",
        }
        yield recording, [supervision], cut


def _per_conversation(
    refs: list[ConversationRef], out: Path
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]]:
    for ref in refs:
        meta = ref.metadata()
        if meta.conversation_audio and meta.channels:
            path, channels = ref.folder / meta.conversation_audio, meta.channels
        else:
            _, channels = channel_layout(meta.speakers)
            path = out / AUDIO_DIR / f"{ref.conversation_id}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_mix(path, placements(ref.folder, meta, channels))
        info = sf.info(str(path))
        recording = _recording(ref.conversation_id, path, 2, info.frames, info.samplerate)
        channel_of = {s: i for i, members in enumerate(channels) for s in members}
        supervisions = [
            _supervision(
                f"{ref.conversation_id}-turn_{t.turn_id}",
                ref.conversation_id,
                ref,
                t,
                meta.speaker_id(t),
                t.start_time,
                channel_of[t.speaker],
            )
            for t in meta.turns
        ]
        cut = {
            "id": ref.conversation_id,
            "start": 0.0,
            "duration": recording["duration"],
            "channel": [0, 1],
            "supervisions": supervisions,
            "recording": recording,
            "custom": {"conversation_id": ref.conversation_id, "channels": channels},
            "type": "MultiCut",
        }
        yield recording, supervisions, cut


def export_lhotse(
    root: Path | str,
    out: Path | str,
    manifest: Path | None = None,
    gzip: bool = False,
    conversations: bool = False,
) -> int:
    """Write the manifests; returns the number of supervisions (turns)."""
    root, out = Path(root), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = ".jsonl.gz" if gzip else ".jsonl"
    names = {k: out / f"{k}{suffix}" for k in KINDS}
    tmp = {k: p.with_name(f".{p.name}.tmp") for k, p in names.items()}

    def opener(path: Path) -> Any:
        return gz.open(path, "wt", encoding="utf-8") if gzip else open(path, "w", encoding="utf-8")

    def line(record: dict[str, Any]) -> str:
        return json.dumps(record, ensure_ascii=False) + "\n"

    refs = open_dataset(root, manifest)
    records = _per_conversation(refs, out) if conversations else _per_turn(refs)
    n = 0
    handles = {k: opener(p) for k, p in tmp.items()}
    try:
        for recording, supervisions, cut in records:
            handles["recordings"].write(line(recording))
            handles["supervisions"].writelines(line(s) for s in supervisions)
            handles["cuts"].write(line(cut))
            n += len(supervisions)
    finally:
        for h in handles.values():
            h.close()
    for key in names:
        os.replace(tmp[key], names[key])
    return n
