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
recording. Per turn, `custom` also has the sample's `target` kind (`reply` or `transcript`); a
scored turn's supervision has its stored scores in `custom["quality"]`. README.md is the dataset
card (synth.export.card).

The manifests (and the mixed conversation audio) are written into a staging folder and switched
into place at once (synth.export.switch): a killed export leaves the previous one whole."""

from __future__ import annotations

import gzip as gz
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf

from ..audio import SAMPLE_RATE
from ..dataset.mixdown import channel_layout, placements, write_mix
from ..dataset.reader import ConversationRef, open_dataset
from ..dataset.records import TurnRecord
from .card import CardSpec, write_card
from .rows import member, quality_field, turn_rows
from .summary import ExportSummary
from .switch import Stage, staged_folder

KINDS = ("recordings", "supervisions", "cuts")
AUDIO_DIR = "audio"
_WRITTEN = re.compile(
    r"(recordings|supervisions|cuts)\.jsonl(\.gz)?|audio|README\.md"
    r"|\.(recordings|supervisions|cuts)\.jsonl(\.gz)?\.tmp"
)


def is_lhotse_file(name: str) -> bool:
    """A name this export writes (or an older synth's temporary manifest)."""
    return bool(_WRITTEN.fullmatch(name))


@dataclass(frozen=True)
class LhotseOptions:
    """The lhotse export's options; `synth export` gives each field a flag of its own."""

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
            **quality_field(turn),
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
    for row in turn_rows(refs):
        ref, turn, sample = row.ref, row.turn, row.sample
        uid = f"{ref.conversation_id}-turn_{turn.turn_id}"
        num_samples = (
            turn.num_samples if turn.num_samples is not None else round(turn.duration_sec * SAMPLE_RATE)
        )
        recording = _recording(uid, row.audio, 1, num_samples, SAMPLE_RATE)
        supervision = _supervision(uid, uid, ref, turn, int(sample["speaker_id"]), 0.0, 0)
        supervision["duration"] = recording["duration"]
        supervision["custom"]["target"] = row.kind
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
    refs: list[ConversationRef], stage: Stage
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]]:
    for ref in refs:
        meta = ref.metadata()
        for t in meta.turns:
            member(ref, t.audio_file, f"turns[{t.turn_id}].audio_file")
        if meta.conversation_audio and meta.channels:
            path = member(ref, meta.conversation_audio, "conversation_audio")
            channels = meta.channels
            info = sf.info(str(path))
        else:
            _, channels = channel_layout(meta.speakers)
            rel = f"{AUDIO_DIR}/{ref.conversation_id}.wav"
            written = stage.tree / rel
            written.parent.mkdir(parents=True, exist_ok=True)
            write_mix(written, placements(ref.folder, meta, channels))
            info = sf.info(str(written))
            path = stage.final(rel)  # where the manifest finds it once the export is in place
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
) -> ExportSummary:
    """Write the manifests; the summary counts what the cuts are: turns (one cut each), or with
    `conversations` the conversations (one MultiCut each, its turns as supervisions)."""
    suffix = ".jsonl.gz" if gzip else ".jsonl"

    def opener(path: Path) -> Any:
        return gz.open(path, "wt", encoding="utf-8") if gzip else open(path, "w", encoding="utf-8")

    def line(record: dict[str, Any]) -> str:
        return json.dumps(record, ensure_ascii=False) + "\n"

    refs = open_dataset(Path(root), manifest)
    n = cuts = 0
    with staged_folder(out, "lhotse", is_lhotse_file) as stage:
        records = _per_conversation(refs, stage) if conversations else _per_turn(refs)
        handles = {k: opener(stage.tree / f"{k}{suffix}") for k in KINDS}
        try:
            for recording, supervisions, cut in records:
                handles["recordings"].write(line(recording))
                handles["supervisions"].writelines(line(s) for s in supervisions)
                handles["cuts"].write(line(cut))
                n += len(supervisions)
                cuts += 1
        finally:
            for h in handles.values():
                h.close()
        write_card(stage.tree, Path(root), refs, _card_spec(cuts, conversations, suffix))
    if conversations:
        return ExportSummary(cuts, "conversation", {"turns": n})
    return ExportSummary(n, "turn", {"cuts": cuts})


def _card_spec(cuts: int, conversations: bool, suffix: str) -> CardSpec:
    level = (
        "one two-channel recording and MultiCut per conversation, a supervision per turn on its "
        "speaker's channel"
        if conversations
        else "a recording, supervision and MonoCut per turn"
    )
    loading = f"""Lhotse manifests ({level}):

```python
from lhotse import CutSet

cuts = CutSet.from_file("path/to/this/folder/cuts{suffix}")
```

The recordings' `source` paths are absolute: the audio stays in the synth dataset (or this
folder's `audio/`), so move them together or rewrite the paths."""
    return CardSpec(
        export="lhotse",
        rows=cuts,
        unit="conversation" if conversations else "turn",
        loading=loading,
        columns=[
            ("recordings / supervisions / cuts", f"the three manifests (`*{suffix}`)"),
            ("supervision `text`, `speaker`", "what the turn says and who says it"),
            (
                "supervision `custom`",
                "conversation_id, turn_number, speaker_id, voice, conversation_start/end (the turn's "
                "place on the timeline), target (per turn), quality (its scores, where scored)",
            ),
            ("supervision `alignment['word']`", "word timings relative to the recording"),
        ],
    )
