"""Lhotse Shar: a dataset as numbered shards, each a `cuts.NNNNNN.jsonl.gz` manifest and a
`recording.NNNNNN.tar` of its audio, written by lhotse's own `SharWriter`, for corpora of millions
of turns that shared cluster file systems and object stores read best as a few large files.
`CutSet.from_shar(in_dir=OUT/shards)` reads it, lazily, shard by shard, and lhotse's samplers
(`DynamicBucketingSampler`) batch it. `OUT/README.md` is the dataset card (synth.export.card);
the shards have their own folder because lhotse takes every file of it for a field.

One MonoCut per training sample (turn), in manifest order, `cuts_per_shard` to a shard. Each cut
and its supervision carry the conversation: `custom` has conversation_id, turn_number (the
turn's id; 0 starts a conversation), speaker, speaker_id, voice, target (`reply` or
`transcript`), target_text, num_turns and the turn's place on the conversation timeline; the
supervision has the text, the speaker and, when the dataset has word timings, `alignment["word"]`
relative to the cut; `custom["quality"]` is the turn's stored scores where it was scored. The
audio is the turn's WAV, stored lossless (FLAC by default, or WAV).

Crash-consistent and resumable: shards are written into a staging folder beside the output
(synth.export.switch), each one finished and recorded in a journal with a digest of what it
holds (its cuts, the size and time of each WAV, the options); a rerun after a kill keeps every
shard whose digest still matches and writes the rest; the finished tree is switched into place at
once. `OUT/shards` holds nothing but the shards (lhotse reads every file in it as a field);
an output of the flat layout earlier synths wrote is replaced."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf

from ..dataset.reader import open_dataset
from ..errors import ConfigError, SynthError
from .card import CARD, CardSpec, write_card
from .rows import Row, quality_field, turn_rows
from .summary import ExportSummary
from .switch import Stage, fsync_dir, staged_folder

AUDIO_FORMATS = ("flac", "wav")
SHARD_FILES = ("cuts.{:06d}.jsonl.gz", "recording.{:06d}.tar")
SHARDS_DIR = "shards"  # lhotse reads every file of its folder as a field: the card stays outside
_SHARD = re.compile(r"[a-z_]+\.\d{6}\.(jsonl\.gz|tar)")
WRITING = "shard-tmp"


@dataclass(frozen=True)
class SharOptions:
    """The lhotse-shar export's options; `synth export` gives each field a flag of its own."""

    cuts_per_shard: int = field(
        default=1000, metadata={"help": "lhotse-shar: cuts (turns) per shard (the last shard may have fewer)"}
    )
    shar_audio: str = field(
        default="flac", metadata={"help": "lhotse-shar: audio in the tar shards, flac (lossless) or wav"}
    )


def is_shar_file(name: str) -> bool:
    """A name this export writes at the top of its output (or a shard of the flat layout of
    earlier synths, so such an output is replaced)."""
    return name in (SHARDS_DIR, CARD) or bool(_SHARD.fullmatch(name))


def _lhotse() -> Any:
    try:
        import lhotse
    except ImportError:
        raise SynthError("the lhotse-shar export needs lhotse: pip install 'synth[lhotse]'") from None
    return lhotse


def _cut(lhotse: Any, row: Row, num_turns: int) -> Any:
    from lhotse.audio import AudioSource
    from lhotse.supervision import AlignmentItem

    ref, turn = row.ref, row.turn
    uid = f"{ref.conversation_id}-turn_{turn.turn_id}"
    info = sf.info(str(row.audio))
    duration = info.frames / info.samplerate
    recording = lhotse.Recording(
        id=uid,
        sources=[AudioSource(type="file", channels=[0], source=str(row.audio))],
        sampling_rate=info.samplerate,
        num_samples=info.frames,
        duration=duration,
    )
    custom: dict[str, Any] = {
        "conversation_id": ref.conversation_id,
        "turn_number": turn.turn_id,
        "speaker": turn.speaker,
        "speaker_id": int(row.sample["speaker_id"]),
        "voice": turn.voice,
        "target": row.kind,
        "target_text": row.target,
        "num_turns": num_turns,
        "conversation_start": turn.start_time,
        "conversation_end": turn.end_time,
        **quality_field(turn),
    }
    if turn.source_turn is not None:
        custom["source_turn"] = turn.source_turn
    alignment = None
    if turn.words is not None:
        alignment = {
            "word": [
                AlignmentItem(
                    w["word"], round(w["start"] - turn.start_time, 6), round(w["end"] - w["start"], 6)
                )
                for w in turn.words
            ]
        }
    supervision = lhotse.SupervisionSegment(
        id=uid,
        recording_id=uid,
        start=0.0,
        duration=duration,
        channel=0,
        text=turn.text,
        speaker=turn.speaker,
        custom=dict(custom),
        alignment=alignment,
    )
    return lhotse.MonoCut(
        id=uid,
        start=0.0,
        duration=duration,
        channel=0,
        supervisions=[supervision],
        recording=recording,
        custom=custom,
    )


def _shards(lhotse: Any, rows: Iterator[Row], size: int) -> Iterator[list[Any]]:
    """The cuts, `size` at a time."""
    shard: list[Any] = []
    turns: dict[str, int] = {}
    for row in rows:
        cid = row.ref.conversation_id
        if cid not in turns:
            turns = {cid: row.ref.num_turns}
        shard.append(_cut(lhotse, row, turns[cid]))
        if len(shard) == size:
            yield shard
            shard = []
    if shard:
        yield shard


def _digest(cuts: list[Any], options: dict[str, Any]) -> str:
    """What a shard holds: its cuts, each WAV's size and modification time, and the options."""
    h = hashlib.sha256(json.dumps(options, sort_keys=True).encode())
    for cut in cuts:
        h.update(json.dumps(cut.to_dict(), sort_keys=True, default=str).encode())
        st = os.stat(cut.recording.sources[0].source)
        h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _journal(stage: Stage) -> dict[int, str | None]:
    """shard -> digest of what is in the tree, from a killed run's journal (a torn last line is
    skipped; a later line for a shard wins)."""
    done: dict[int, str | None] = {}
    try:
        lines = stage.journal.read_bytes().splitlines()
    except FileNotFoundError:
        return done
    for line in lines:
        try:
            entry = json.loads(line)
            done[int(entry["shard"])] = entry["digest"]
        except (ValueError, KeyError, TypeError):
            continue
    return done


def _record(stage: Stage, shard: int, digest: str | None) -> None:
    with open(stage.journal, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"shard": shard, "digest": digest}) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _write_shard(lhotse: Any, stage: Stage, index: int, cuts: list[Any], audio: str, digest: str) -> None:
    """One shard with lhotse's writer in a scratch folder, then moved into the tree and recorded.
    The journal says "unknown" for the shard while its files are being replaced."""
    from lhotse.shar import SharWriter

    scratch = stage.folder / WRITING
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    with SharWriter(str(scratch), fields={"recording": audio}, shard_size=len(cuts), shard_offset=index) as w:
        for cut in cuts:
            w.write(cut)
    _record(stage, index, None)
    for pattern in SHARD_FILES:
        name = pattern.format(index)
        with open(scratch / name, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(scratch / name, stage.tree / SHARDS_DIR / name)
    fsync_dir(stage.tree / SHARDS_DIR)
    _record(stage, index, digest)


def export_shar(
    root: Path | str,
    out: Path | str,
    manifest: Path | None = None,
    cuts_per_shard: int = 1000,
    audio_format: str = "flac",
) -> ExportSummary:
    """Write the dataset at `root` (the conversations of `manifest`, if given) to `out` as Shar
    shards, keeping the shards an interrupted run finished; the summary the CLI prints."""
    if cuts_per_shard < 1:
        raise ConfigError("cuts_per_shard", "must be at least 1", cuts_per_shard)
    if audio_format not in AUDIO_FORMATS:
        raise ConfigError("shar_audio", f"choose {' or '.join(AUDIO_FORMATS)}", audio_format)
    lhotse = _lhotse()
    refs = open_dataset(Path(root), manifest)
    options = {"cuts_per_shard": cuts_per_shard, "audio": audio_format, "lhotse": lhotse.__version__}
    count = shards = reused = 0
    with staged_folder(out, "lhotse-shar", is_shar_file, resumable=True) as stage:
        done = _journal(stage)
        shards_dir = stage.tree / SHARDS_DIR
        shards_dir.mkdir(exist_ok=True)
        for index, cuts in enumerate(_shards(lhotse, turn_rows(refs), cuts_per_shard)):
            digest = _digest(cuts, options)
            present = all((shards_dir / p.format(index)).is_file() for p in SHARD_FILES)
            if done.get(index) == digest and present:
                reused += 1
            else:
                _write_shard(lhotse, stage, index, cuts, audio_format, digest)
            count += len(cuts)
            shards = index + 1
        wanted = {p.format(i) for i in range(shards) for p in SHARD_FILES}
        for folder, keep in ((shards_dir, wanted), (stage.tree, {SHARDS_DIR})):
            for path in folder.iterdir():  # shards of a longer earlier run, anything else
                if path.name not in keep:
                    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        shutil.rmtree(stage.folder / WRITING, ignore_errors=True)
        write_card(stage.tree, Path(root), refs, _card_spec(count, shards, audio_format))
    details = {"shards": shards, "cuts_per_shard": cuts_per_shard, "reused_shards": reused}
    notes = (
        (f"resumed: kept {reused} of {shards} shard(s) an interrupted run had finished",) if reused else ()
    )
    return ExportSummary(count, "cut", details, notes)


def _card_spec(cuts: int, shards: int, audio: str) -> CardSpec:
    loading = f"""Lhotse Shar shards in `shards/` ({shards} shard(s): `cuts.NNNNNN.jsonl.gz` and
`recording.NNNNNN.tar`, the audio as {audio}), read lazily, shard by shard:

```python
from lhotse import CutSet

cuts = CutSet.from_shar(in_dir="path/to/this/folder/shards")
```

Lhotse reads every file of the folder it is given as a field, so the shards are in their own
folder, this card outside it."""
    return CardSpec(
        export="lhotse-shar",
        rows=cuts,
        unit="cut",
        loading=loading,
        columns=[
            (
                "cut / supervision `custom`",
                "conversation_id, turn_number, speaker, speaker_id, voice, "
                "target, target_text, num_turns, conversation_start/end, source_turn (a split turn's "
                "piece), quality (its scores, where scored)",
            ),
            ("supervision `text`, `speaker`", "what the turn says and who says it"),
            ("supervision `alignment['word']`", "word timings relative to the cut"),
            ("recording", f"the turn's audio ({audio}, lossless)"),
        ],
    )
