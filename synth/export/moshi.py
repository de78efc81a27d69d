"""moshi-finetune's data layout (kyutai-labs/moshi-finetune, `finetune/data/dataset.py` and
`interleaver.py`): a JSONL of `{"path", "duration"}` lines (paths relative to the JSONL's
folder), a stereo WAV per line (channel 0 the model's side, channel 1 the user's), and beside
each WAV a JSON `{"alignments": [[word, [start, end], speaker], ...]}` sorted by start. Its
interleaver keeps the words of the speaker labelled `SPEAKER_MAIN` (`keep_main_only=True` in
train.py): the main speaker's words are labelled so, the others `SPEAKER_<label>`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ..audio import SAMPLE_RATE
from ..dataset.mixdown import BLOCK_SEC, channel_layout, placements, write_blocks, write_mix
from ..dataset.reader import ConversationRef, DatasetError, open_dataset
from ..dataset.records import ConversationMetadata

MAIN_LABEL = "SPEAKER_MAIN"  # moshi-finetune's Interleaver.main_speaker_label default
AUDIO_DIR = "data_stereo"
JSONL = "data.jsonl"
MIMI_RATE = 24_000


@dataclass(frozen=True)
class MoshiOptions:
    main_speaker: str | None = field(
        default=None,
        metadata={
            "help": "moshi: the speaker label on channel 0, the model's side (default: the "
            "conversation audio's main speaker, else each conversation's first speaker)"
        },
    )
    sample_rate: int = field(default=MIMI_RATE, metadata={"help": "moshi: WAV rate (Mimi's is 24000)"})


def alignments(meta: ConversationMetadata, main: str) -> list[list[Any]]:
    """Every word of every turn, and every event, as [text, [start, end], speaker label], sorted
    by start; a DatasetError when a turn has no word timings."""
    out: list[list[Any]] = []

    def label(speaker: str) -> str:
        return MAIN_LABEL if speaker == main else f"SPEAKER_{speaker}"

    for turn in meta.turns:
        if turn.words is None:
            raise DatasetError(
                f"{meta.conversation_id}: turn {turn.turn_id} has no word timings (moshi needs them: "
                "make the dataset with this synth, or convert recordings with --word-timings)"
            )
        out += [[w["word"], [w["start"], w["end"]], label(turn.speaker)] for w in turn.words]
    out += [[e.text, [e.start, e.end], label(e.speaker)] for e in meta.events]
    return sorted(out, key=lambda a: (a[1][0], a[1][1]))


def _conversation_blocks(path: Path) -> Iterator[np.ndarray]:
    with sf.SoundFile(str(path)) as fh:
        while True:
            block = fh.read(int(BLOCK_SEC * fh.samplerate), dtype="float32", always_2d=True)
            if not block.shape[0]:
                return
            yield block


def _write_stereo(ref: ConversationRef, meta: ConversationMetadata, main: str, out: Path, rate: int) -> int:
    """The conversation audio with `main` on channel 0: its conversation.wav when it has one with
    that main speaker (augmentation kept), else mixed from its turns and events."""
    if meta.conversation_audio and meta.main_speaker == main:
        return write_blocks(
            out, _conversation_blocks(ref.folder / meta.conversation_audio), SAMPLE_RATE, rate
        )
    _, channels = channel_layout(meta.speakers, main)
    return write_mix(out, placements(ref.folder, meta, channels), SAMPLE_RATE, out_rate=rate)


def export_moshi(
    root: Path | str,
    out: Path | str,
    manifest: Path | None = None,
    main_speaker: str | None = None,
    sample_rate: int = MIMI_RATE,
) -> int:
    out = Path(out)
    (out / AUDIO_DIR).mkdir(parents=True, exist_ok=True)
    lines = []
    for ref in open_dataset(Path(root), manifest):
        meta = ref.metadata()
        main, _ = channel_layout(meta.speakers, main_speaker or meta.main_speaker)
        words = alignments(meta, main)
        name = f"{AUDIO_DIR}/{ref.conversation_id}"
        tmp = out / f"{name}.wav.tmp"
        frames = _write_stereo(ref, meta, main, tmp, sample_rate)
        os.replace(tmp, out / f"{name}.wav")
        (out / f"{name}.json").write_text(json.dumps({"alignments": words}, ensure_ascii=False) + "\n")
        lines.append(json.dumps({"path": f"{name}.wav", "duration": frames / sample_rate}) + "\n")
    tmp = out / f".{JSONL}.tmp"
    tmp.write_text("".join(lines), encoding="utf-8")
    os.replace(tmp, out / JSONL)
    return len(lines)
