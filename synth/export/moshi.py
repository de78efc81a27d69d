"""moshi-finetune's data layout (kyutai-labs/moshi-finetune, `finetune/data/dataset.py` and
`interleaver.py`): a JSONL of `{"path", "duration"}` lines (paths relative to the JSONL's
folder), a stereo WAV per line (channel 0 the model's side, channel 1 the user's), and beside
each WAV a JSON `{"alignments": [[word, [start, end], speaker], ...]}` sorted by start. Its
interleaver keeps the words of the speaker labelled `SPEAKER_MAIN` (`keep_main_only=True` in
train.py): the main speaker's words are labelled so, the others `SPEAKER_<label>`.

Full band: Mimi codes 24 kHz audio. A conversation.wav at the export rate (24 kHz, made from the
engine's native-rate audio; `conversation_audio_rate` in metadata) is copied sample for sample;
one at another rate is resampled once. Where the stereo file must come from 16 kHz audio (a
conversation.wav made before full band, or none: mixed from the 16 kHz turn WAVs) it is still
made, but it has nothing above 8 kHz, and the summary says how many files are so and how to get
full band. Built in a staging folder and switched into place (synth.export.switch).

Memory probes are left out unless asked (`probes`): a training export must not carry evaluation
questions by default. Asked, each conversation's probes follow its end, the question on the
user's channel and the answer, spoken by the main speaker, on the model's (moshi_probes.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ..audio import SAMPLE_RATE
from ..dataset.mixdown import BLOCK_SEC, channel_layout, mix_blocks, placements, write_blocks
from ..dataset.reader import ConversationRef, open_dataset
from ..dataset.records import ConversationMetadata
from ..errors import DatasetError
from ..options import option
from .moshi_probes import append_probes, probe_audio
from .rows import member
from .summary import ExportSummary
from .switch import staged_folder

MAIN_LABEL = "SPEAKER_MAIN"  # moshi-finetune's Interleaver.main_speaker_label default
AUDIO_DIR = "data_stereo"
JSONL = "data.jsonl"
MIMI_RATE = 24_000
_WRITTEN = re.compile(rf"{JSONL}|{AUDIO_DIR}|\.{JSONL}\.tmp")


def is_moshi_file(name: str) -> bool:
    """A name this export writes (or an older synth's temporary JSONL)."""
    return bool(_WRITTEN.fullmatch(name))


@dataclass(frozen=True)
class MoshiOptions:
    """The options of `synth export moshi`: the main speaker, the WAV rate and the memory probes."""

    main_speaker: str | None = field(
        default=None,
        metadata={
            "help": "moshi: the speaker label on channel 0, the model's side (default: the "
            "conversation audio's main speaker, else each conversation's first speaker)"
        },
    )
    sample_rate: int = field(default=MIMI_RATE, metadata={"help": "moshi: WAV rate (Mimi's is 24000)"})
    # One flag per export: `synth export` gives each export's fields their own flags.
    probes: bool = option(
        False,
        flag="--moshi-probes",
        help="moshi: after each conversation, its memory probes: the question on the user's channel, "
        "the answer (made with generate --probe-answer-audio) on the model's (default: left out)",
    )


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


@dataclass(frozen=True)
class Made:
    """How one stereo file was made: `how` is "copied" (conversation.wav at the export rate),
    "resampled" (conversation.wav at another rate) or "mixed" (from the 16 kHz turn WAVs);
    `source_rate` the rate of what it was made from."""

    frames: int
    how: str
    source_rate: int


def _blocks(path: Path, dtype: str, swap: bool) -> Iterator[np.ndarray]:
    with sf.SoundFile(str(path)) as fh:
        while True:
            block = fh.read(int(BLOCK_SEC * fh.samplerate), dtype=dtype, always_2d=True)
            if not block.shape[0]:
                return
            yield block[:, ::-1] if swap else block


def _copy(path: Path, out: Path, swap: bool) -> int:
    """conversation.wav's PCM16 samples as they are (channels swapped when asked)."""
    frames = 0
    rate = sf.info(str(path)).samplerate
    with sf.SoundFile(str(out), "w", samplerate=rate, channels=2, subtype="PCM_16", format="WAV") as fh:
        for block in _blocks(path, "int16", swap):
            fh.write(np.ascontiguousarray(block))
            frames += block.shape[0]
    return frames


def _conversation_audio(
    ref: ConversationRef, meta: ConversationMetadata, main: str
) -> tuple[Path, bool] | None:
    """(conversation.wav, swap its channels) when it can give `main` on channel 0 exactly: it has
    that main speaker, or `main` alone on channel 1 and no augmentation there (which must not
    become the model's side). Its rate is checked against metadata's `conversation_audio_rate`."""
    if not meta.conversation_audio:
        return None
    path = member(ref, meta.conversation_audio, "conversation_audio")
    info = sf.info(str(path))
    recorded = meta.conversation_audio_rate or SAMPLE_RATE
    if info.samplerate != recorded:
        raise DatasetError(
            f"{path}: {info.samplerate} Hz, but {ref.metadata_path} says conversation_audio_rate {recorded}"
        )
    if info.channels != 2:
        raise DatasetError(f"{path}: {info.channels} channel(s), a conversation.wav has 2")
    channels = meta.channels or channel_layout(meta.speakers, meta.main_speaker)[1]
    if channels[0] == [main]:
        return path, False
    if channels[1] == [main] and "augmentation" not in meta.extra:
        return path, True
    return None


def _write_stereo(ref: ConversationRef, meta: ConversationMetadata, main: str, out: Path, rate: int) -> Made:
    """The conversation audio with `main` on channel 0: its conversation.wav when it can give it
    (copied at the export rate, else resampled once), else mixed from its turns and events."""
    source = _conversation_audio(ref, meta, main)
    if source is not None:
        path, swap = source
        source_rate = sf.info(str(path)).samplerate
        if source_rate == rate:
            return Made(_copy(path, out, swap), "copied", source_rate)
        frames = write_blocks(out, _blocks(path, "float32", swap), source_rate, rate)
        return Made(frames, "resampled", source_rate)
    for t in meta.turns:
        member(ref, t.audio_file, f"turns[{t.turn_id}].audio_file")
    for i, e in enumerate(meta.events):
        if e.audio_file is not None:
            member(ref, e.audio_file, f"events[{i}].audio_file")
    _, channels = channel_layout(meta.speakers, main)
    blocks = (block for _, block in mix_blocks(placements(ref.folder, meta, channels), 2, SAMPLE_RATE))
    frames = write_blocks(out, _padded(blocks, meta), SAMPLE_RATE, rate)
    return Made(frames, "mixed", SAMPLE_RATE)


def _padded(blocks: Iterator[np.ndarray], meta: ConversationMetadata) -> Iterator[np.ndarray]:
    """The mix, then silence up to a windowed session's padded length (metadata
    `session.audio_sec`), as its conversation.wav would have."""
    total = round(float((meta.extra.get("session") or {}).get("audio_sec") or 0) * SAMPLE_RATE)
    n = 0
    for block in blocks:
        n += block.shape[0]
        yield block
    while n < total:
        pad = min(total - n, int(BLOCK_SEC * SAMPLE_RATE))
        n += pad
        yield np.zeros((pad, 2), dtype=np.float32)


def _band_note(limited: list[tuple[str, Made]], total: int, rate: int) -> str:
    legacy = sum(1 for _, m in limited if m.how != "mixed")
    names = ", ".join(cid for cid, _ in limited[:5]) + (", ..." if len(limited) > 5 else "")
    return (
        f"{len(limited)} of {total} stereo file(s) are band-limited to 8 kHz ({names}): made from "
        f"16 kHz audio ({legacy} from a 16 kHz conversation.wav, {len(limited) - legacy} mixed from the "
        f"16 kHz turn WAVs), so nothing above 8 kHz reaches Mimi's {rate // 1000} kHz codec. For full "
        "band, generate the dataset with --conversation-audio (a 24 kHz conversation.wav made from "
        "the engine's native-rate audio) and export with its main speaker"
    )


def export_moshi(
    root: Path | str,
    out: Path | str,
    manifest: Path | None = None,
    main_speaker: str | None = None,
    sample_rate: int = MIMI_RATE,
    probes: bool = False,
) -> ExportSummary:
    """Writes a dataset in moshi-finetune's layout into the folder `out`, staged and put in place
    whole."""
    refs = open_dataset(Path(root), manifest)
    made: list[tuple[str, Made]] = []
    carried = left_out = 0
    with staged_folder(out, "moshi", is_moshi_file) as stage:
        (stage.tree / AUDIO_DIR).mkdir()
        lines = []
        for ref in refs:
            meta = ref.metadata()
            main, _ = channel_layout(meta.speakers, main_speaker or meta.main_speaker)
            words = alignments(meta, main)
            tail = probe_audio(ref, meta, main, sample_rate) if probes else []
            left_out += 0 if probes else len(meta.probes)
            name = f"{AUDIO_DIR}/{ref.conversation_id}"
            result = _write_stereo(ref, meta, main, stage.tree / f"{name}.wav", sample_rate)
            added, probe_words = append_probes(stage.tree / f"{name}.wav", tail, sample_rate, MAIN_LABEL)
            carried += len(tail)
            (stage.tree / f"{name}.json").write_text(
                json.dumps({"alignments": words + probe_words}, ensure_ascii=False) + "\n", encoding="utf-8"
            )
            duration = (result.frames + added) / sample_rate
            lines.append(json.dumps({"path": f"{name}.wav", "duration": duration}) + "\n")
            made.append((ref.conversation_id, result))
        (stage.tree / JSONL).write_text("".join(lines), encoding="utf-8")
    details = {how: sum(1 for _, m in made if m.how == how) for how in ("copied", "resampled", "mixed")}
    limited = [(cid, m) for cid, m in made if m.source_rate <= SAMPLE_RATE < sample_rate]
    details["band_limited"] = len(limited)
    notes = [_band_note(limited, len(made), sample_rate)] if limited else []
    if carried:
        details["probes"] = carried
        notes.append(
            f"{carried} memory probe(s) after their conversations (question on channel 1, answer on "
            "channel 0), from their 16 kHz WAVs: nothing above 8 kHz in them; their words are spread "
            "over their audio (probes have no word timings)"
        )
    if left_out:
        notes.append(f"left out {left_out} memory probe(s); carry them with --moshi-probes")
    return ExportSummary(len(made), "conversation", details, tuple(notes))
