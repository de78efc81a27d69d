"""A Hugging Face `datasets` Dataset saved with `save_to_disk`, one row per turn: audio (an
`Audio` feature at 16 kHz holding the WAV bytes), text, target, ids, turn numbers and, when the
dataset has them, the turn's word timings."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..audio import SAMPLE_RATE
from ..dataset.reader import open_dataset
from ..dataset.records import ConversationMetadata
from ..errors import SynthError
from .rows import turn_rows


@dataclass(frozen=True)
class HfOptions:
    undecoded: bool = field(
        default=False,
        metadata={
            "help": "store the audio undecoded (Audio(decode=False)): rows read without torchcodec; "
            "decode one with soundfile.read(io.BytesIO(row['audio']['bytes']))"
        },
    )


def export_hf(
    root: Path | str, out: Path | str, manifest: Path | None = None, undecoded: bool = False
) -> int:
    """Rows are built as `{bytes, path}` structs and cast to `Audio`, so writing needs no audio
    codec; reading decodes with whatever backend `datasets` uses on the training machine
    (torchcodec in datasets 5). `undecoded` stores `Audio(decode=False)`: `ds[i]` then works on a
    machine without torchcodec, its audio a `{"bytes", "path"}` dict, decoded in one line with
    `soundfile.read(io.BytesIO(row["audio"]["bytes"]))`. `audio_path` is the WAV's path relative
    to the dataset root (`conversations/<id>/turn_<n>.wav`): `save_to_disk` keeps only the file
    name in the Audio struct's own `path`.

    Full-duplex columns: `words` (the turn's word timings, seconds from the start of its audio;
    empty when the dataset has none), `conversation_audio_path` (the conversation's two-channel
    conversation.wav relative to the root, or None) and `channel` (the channel the turn's speaker
    is on in it, or None)."""
    try:
        import datasets
    except ImportError:
        raise SynthError(
            "the hf export needs the Hugging Face datasets library: pip install 'synth[hf]'"
        ) from None

    root = Path(root)
    refs = open_dataset(root, manifest)

    def rows() -> Iterator[dict[str, Any]]:
        metas: dict[str, ConversationMetadata] = {}
        for ref, turn, sample, target in turn_rows(refs):
            wav = ref.folder / turn.audio_file
            if ref.conversation_id not in metas:
                metas.clear()
                metas[ref.conversation_id] = ref.metadata()
            meta = metas[ref.conversation_id]
            channel = next((i for i, c in enumerate(meta.channels or []) if turn.speaker in c), None)
            yield {
                "audio": {"bytes": wav.read_bytes(), "path": f"{ref.entry.path}/{turn.audio_file}"},
                "audio_path": f"{ref.entry.path}/{turn.audio_file}",
                "text": turn.text,
                "target": target,
                "conversation_id": ref.conversation_id,
                "turn_number": int(sample["turn_number"]),
                "speaker": turn.speaker,
                "speaker_id": int(sample["speaker_id"]),
                "duration_sec": float(turn.duration_sec),
                "words": [
                    {
                        "word": w["word"],
                        "start": w["start"] - turn.start_time,
                        "end": w["end"] - turn.start_time,
                    }
                    for w in turn.words or []
                ],
                "conversation_audio_path": (
                    f"{ref.entry.path}/{meta.conversation_audio}" if meta.conversation_audio else None
                ),
                "channel": channel,
            }

    features = datasets.Features(
        {
            "audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
            "audio_path": datasets.Value("string"),
            "text": datasets.Value("string"),
            "target": datasets.Value("string"),
            "conversation_id": datasets.Value("string"),
            "turn_number": datasets.Value("int32"),
            "speaker": datasets.Value("string"),
            "speaker_id": datasets.Value("int32"),
            "duration_sec": datasets.Value("float32"),
            "words": [
                {
                    "word": datasets.Value("string"),
                    "start": datasets.Value("float32"),
                    "end": datasets.Value("float32"),
                }
            ],
            "conversation_audio_path": datasets.Value("string"),
            "channel": datasets.Value("int32"),
        }
    )
    with tempfile.TemporaryDirectory(prefix="synth-hf-") as cache:  # keep ~/.cache clean
        ds = datasets.Dataset.from_generator(rows, features=features, cache_dir=cache)
        ds = ds.cast_column("audio", datasets.Audio(sampling_rate=SAMPLE_RATE, decode=not undecoded))
        ds.save_to_disk(str(out))
        return len(ds)
