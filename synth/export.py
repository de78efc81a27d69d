"""Exports of a dataset for training code that does not read our folder layout. To add one: a
function (root, out, manifest, options) -> count, an options dataclass (its fields become the
flags of `synth export --to NAME`) and one entry in EXPORTS.

- `llama-omni`: LLaMA-Omni's training JSON, one entry per sample:
  `{"id", "speech", "conversations": [{"from": "human", "value": "<speech>"},
  {"from": "gpt", "value": target}], "conversation_id", "turn_number", "speaker_id"}`, with
  `speech` an absolute path (or relative to the dataset root with `relative=True`).
- `hf`: a Hugging Face `datasets` Dataset saved with `save_to_disk`, one row per turn: audio
  (an `Audio` feature at 16 kHz holding the WAV bytes), text, target, ids, turn numbers."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audio import SAMPLE_RATE
from .dataset import ConversationRef, DatasetError, open_dataset
from .errors import SynthError
from .records import SAMPLES_FILE, TurnRecord


def _turn_rows(
    refs: list[ConversationRef],
) -> Iterator[tuple[ConversationRef, TurnRecord, dict[str, Any], str]]:
    """(conversation, turn, sample, target text) for every sample, in order."""
    for ref in refs:
        turns = ref.turns()
        samples = ref.samples()
        if len(samples) != len(turns):
            raise DatasetError(
                f"{ref.folder / SAMPLES_FILE}: {len(samples)} samples for "
                f"{len(turns)} turns (run `synth tokenize`)"
            )
        for sample, turn in zip(samples, turns):
            i = int(sample["turn_number"])
            target = turns[i + 1].text if sample.get("target") == "reply" else turns[i].text
            yield ref, turn, sample, str(target)


def export_llama_omni(
    root: Path | str, out: Path | str, relative: bool = False, manifest: Path | None = None
) -> int:
    root, out = Path(root), Path(out)
    refs = open_dataset(root, manifest)
    tmp = out.with_name(f".{out.name}.tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("[\n")
        for ref, turn, sample, target in _turn_rows(refs):
            wav = ref.folder / turn.audio_file
            entry = {
                "id": f"{ref.conversation_id}_turn_{sample['turn_number']}",
                "speech": str(wav.relative_to(root.resolve())) if relative else str(wav),
                "conversations": [{"from": "human", "value": "<speech>"}, {"from": "gpt", "value": target}],
                "conversation_id": ref.conversation_id,
                "turn_number": sample["turn_number"],
                "speaker_id": sample["speaker_id"],
            }
            fh.write((",\n" if n else "") + json.dumps(entry, ensure_ascii=False))
            n += 1
        fh.write("\n]\n")
    os.replace(tmp, out)
    return n


def export_hf(
    root: Path | str, out: Path | str, manifest: Path | None = None, undecoded: bool = False
) -> int:
    """Rows are built as `{bytes, path}` structs and cast to `Audio`, so writing needs no audio
    codec; reading decodes with whatever backend `datasets` uses on the training machine
    (torchcodec in datasets 5). `undecoded` stores `Audio(decode=False)`: `ds[i]` then works on a
    machine without torchcodec, its audio a `{"bytes", "path"}` dict, decoded in one line with
    `soundfile.read(io.BytesIO(row["audio"]["bytes"]))`. `audio_path` is the WAV's path relative
    to the dataset root (`conversations/<id>/turn_<n>.wav`): `save_to_disk` keeps only the file
    name in the Audio struct's own `path`."""
    try:
        import datasets
    except ImportError:
        raise SynthError(
            "the hf export needs the Hugging Face datasets library: pip install 'synth[hf]'"
        ) from None

    root = Path(root)
    refs = open_dataset(root, manifest)

    def rows() -> Iterator[dict[str, Any]]:
        for ref, turn, sample, target in _turn_rows(refs):
            wav = ref.folder / turn.audio_file
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
        }
    )
    with tempfile.TemporaryDirectory(prefix="synth-hf-") as cache:  # keep ~/.cache clean
        ds = datasets.Dataset.from_generator(rows, features=features, cache_dir=cache)
        ds = ds.cast_column("audio", datasets.Audio(sampling_rate=SAMPLE_RATE, decode=not undecoded))
        ds.save_to_disk(str(out))
        return len(ds)


@dataclass(frozen=True)
class LlamaOmniOptions:
    relative: bool = field(
        default=False, metadata={"help": "speech paths relative to the dataset root (default absolute)"}
    )


@dataclass(frozen=True)
class HfOptions:
    undecoded: bool = field(
        default=False,
        metadata={
            "help": "store the audio undecoded (Audio(decode=False)): rows read without torchcodec; "
            "decode one with soundfile.read(io.BytesIO(row['audio']['bytes']))"
        },
    )


@dataclass(frozen=True)
class LhotseOptions:
    gzip: bool = field(default=False, metadata={"help": "lhotse: write *.jsonl.gz manifests"})


def export_lhotse(root: Path | str, out: Path | str, manifest: Path | None = None, gzip: bool = False) -> int:
    """Lhotse's manifests, written without lhotse: `recordings`, `supervisions` and `cuts` JSONL
    (gzipped with `gzip`). A recording, supervision and MonoCut per turn (its WAV, absolute path);
    the supervision carries the text and speaker, and in `custom` the conversation id, turn number,
    speaker index, voice and the turn's place on the conversation timeline."""
    import gzip as gz

    root, out = Path(root), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = ".jsonl.gz" if gzip else ".jsonl"
    names = {k: out / f"{k}{suffix}" for k in ("recordings", "supervisions", "cuts")}
    tmp = {k: p.with_name(f".{p.name}.tmp") for k, p in names.items()}

    def opener(path: Path) -> Any:
        return gz.open(path, "wt", encoding="utf-8") if gzip else open(path, "w", encoding="utf-8")

    n = 0
    handles = {k: opener(p) for k, p in tmp.items()}
    try:
        for ref, turn, sample, _target in _turn_rows(open_dataset(root, manifest)):
            uid = f"{ref.conversation_id}-turn_{turn.turn_id}"
            wav = (ref.folder / turn.audio_file).resolve()
            num_samples = (
                turn.num_samples if turn.num_samples is not None else round(turn.duration_sec * SAMPLE_RATE)
            )
            duration = num_samples / SAMPLE_RATE
            recording = {
                "id": uid,
                "sources": [{"type": "file", "channels": [0], "source": str(wav)}],
                "sampling_rate": SAMPLE_RATE,
                "num_samples": num_samples,
                "duration": duration,
                "channel_ids": [0],
            }
            supervision = {
                "id": uid,
                "recording_id": uid,
                "start": 0.0,
                "duration": duration,
                "channel": 0,
                "text": turn.text,
                "speaker": turn.speaker,
                "custom": {
                    "conversation_id": ref.conversation_id,
                    "turn_number": turn.turn_id,
                    "speaker_id": int(sample["speaker_id"]),
                    "voice": turn.voice,
                    "conversation_start": turn.start_time,
                    "conversation_end": turn.end_time,
                },
            }
            cut = {
                "id": uid,
                "start": 0.0,
                "duration": duration,
                "channel": 0,
                "supervisions": [supervision],
                "recording": recording,
                "custom": {"conversation_id": ref.conversation_id, "turn_number": turn.turn_id},
                "type": "MonoCut",
            }
            for key, record in (("recordings", recording), ("supervisions", supervision), ("cuts", cut)):
                handles[key].write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    finally:
        for h in handles.values():
            h.close()
    for key in names:
        os.replace(tmp[key], names[key])
    return n


@dataclass(frozen=True)
class ExportTarget:
    """An export `synth export --to NAME` knows: what its output is, its settings and writer."""

    name: str
    output_help: str
    options: type
    write: Callable[[Path, Path, Path | None, Any], int]


EXPORTS: dict[str, ExportTarget] = {
    t.name: t
    for t in (
        ExportTarget(
            "llama-omni",
            "LLaMA-Omni's training JSON file",
            LlamaOmniOptions,
            lambda root, out, manifest, o: export_llama_omni(root, out, o.relative, manifest),
        ),
        ExportTarget(
            "lhotse",
            "a folder of Lhotse manifests (recordings, supervisions, cuts)",
            LhotseOptions,
            lambda root, out, manifest, o: export_lhotse(root, out, manifest, o.gzip),
        ),
        ExportTarget(
            "hf",
            "a Hugging Face dataset folder (save_to_disk)",
            HfOptions,
            lambda root, out, manifest, o: export_hf(root, out, manifest, o.undecoded),
        ),
    )
}
