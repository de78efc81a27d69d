"""LLaMA-Omni's training JSON, one entry per sample: `{"id", "speech", "conversations":
[{"from": "human", "value": "<speech>"}, {"from": "gpt", "value": target}], "conversation_id",
"turn_number", "speaker_id", "target"}`, with `speech` an absolute path (or relative to the
dataset root with `relative=True`) and `target` the sample's target kind (`reply` or
`transcript`, as in samples.jsonl).

LLaMA-Omni pads or trims every turn's audio to Whisper's 30 s window (`whisper.pad_or_trim`), so
audio past 30 s would be lost without a word. A turn over 30 s is refused by default (the error
names the conversation, the turn and the limit); `long_turns="drop"` leaves its sample out and
says so in the summary; `long_turns="split"` cuts it at sentence ends, between words, where its
word timings say the speaker paused, into pieces of at most 30 s, each its own WAV and text in a
folder beside the JSON (`<name>.pieces-<run>/<conversation>/turn_<n>_part_<k>.wav`). The pieces
of a turn are consecutive entries with the turn's `turn_number` and `piece`/`pieces`; all but the
last target their own words (`transcript`), the last keeps the turn's target.

Memory probes (docs/memory.md; `probes`, PROBE_CHOICES: by default only where the dataset made
them training samples) follow their conversation's turns as items of target kind `answer`: the
question's WAV in, its answer out, `turn_number` after the turns, with `probe_id`, `question`,
`answer`, `category`, `adversarial`, `scoring`, `time`, `evidence`, `distance_sec` and
`distance_tokens` from metadata. A question over 30 s cannot be split (it has no word timings):
it is refused or, with `long_turns="drop"`, left out like a turn."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import soundfile as sf

from ..audio import SAMPLE_RATE
from ..dataset.reader import open_dataset
from ..errors import CannotSplit, ConfigError, DatasetError, SynthError
from ..options import option
from ..samples.builder import WHISPER_WINDOW_SEC
from .pieces import split_turn
from .rows import PROBE_CHOICES, PROBES_HELP, ProbeRow, Row, conversation_rows, probes_note
from .summary import ExportSummary
from .switch import absolute, fsync_tree, staged_file

LONG_TURNS = ("refuse", "drop", "split")
LIMIT = int(WHISPER_WINDOW_SEC * SAMPLE_RATE)  # whisper.audio.N_SAMPLES


@dataclass(frozen=True)
class LlamaOmniOptions:
    """The options of `synth export llama-omni`: relative paths, what to do with long turns, and the
    memory probes."""

    relative: bool = field(
        default=False, metadata={"help": "speech paths relative to the dataset root (default absolute)"}
    )
    long_turns: str = field(
        default="refuse",
        metadata={
            "help": "llama-omni: a turn over Whisper's 30 s window, which LLaMA-Omni would cut: "
            "refuse (the export fails naming it), drop (leave its sample out, reported) or split "
            "(at sentence ends, from its word timings, into pieces of at most 30 s)"
        },
    )
    # One flag per export: `synth export` gives each export's fields their own flags.
    probes: str = option(
        "auto", flag="--omni-probes", choices=PROBE_CHOICES, help="llama-omni: " + PROBES_HELP
    )


def _samples(row: Row) -> int:
    return row.turn.num_samples if row.turn.num_samples is not None else sf.info(str(row.audio)).frames


def _fits(row: ProbeRow, long: list[str], long_turns: str) -> bool:
    """Whether a probe's question fits Whisper's window; one that does not is listed in `long`
    (refused or dropped with the turns); it cannot be split, having no word timings."""
    frames = sf.info(str(row.audio)).frames
    if frames <= LIMIT:
        return True
    where = f"{row.ref.conversation_id} probe {row.probe.probe_id}"
    if long_turns == "split":
        raise DatasetError(
            f"{where}: its question lasts over {WHISPER_WINDOW_SEC:g} s and has no word timings to "
            "split it at (use --long-turns drop)"
        )
    long.append(f"{where} ({frames / SAMPLE_RATE:.1f} s)")
    return False


def _listed(items: list[str], most: int = 5) -> str:
    return "; ".join(items[:most]) + (f"; and {len(items) - most} more" if len(items) > most else "")


def _where(row: Row) -> str:
    return f"{row.ref.conversation_id} turn {row.turn.turn_id}"


class _Pieces:
    """The folder of split turns' WAVs beside the JSON, made on the first split; named per run,
    so the previous export's pieces stay until the new JSON is in place."""

    def __init__(self, out: Path):
        self.out = out
        self.folder = out.with_name(f"{out.name}.pieces-{secrets.token_hex(4)}")
        self.made = False
        self.count = 0

    def write(self, row: Row, k: int, start: int, end: int, text: str) -> Path:
        folder = self.folder / row.ref.conversation_id
        folder.mkdir(parents=True, exist_ok=True)
        self.made = True
        self.count += 1
        data, rate = sf.read(str(row.audio), start=start, stop=end, dtype="int16")
        path = folder / f"turn_{row.turn.turn_id}_part_{k}.wav"
        sf.write(str(path), data, rate, subtype="PCM_16", format="WAV")
        path.with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
        return path

    def finish(self) -> None:
        """Before the JSON: on disk. After it: every other run's pieces folder is removed."""
        if self.made:
            fsync_tree(self.folder)

    def remove_others(self) -> None:
        for p in self.out.parent.iterdir():
            if (
                p.name.startswith(f"{self.out.name}.pieces-")
                and p != self.folder
                and p.is_dir()
                and not p.is_symlink()
            ):
                shutil.rmtree(p, ignore_errors=True)


def _entry(row: Row, speech: str, kind: str, target: str, piece: tuple[int, int] | None) -> dict[str, Any]:
    turn_number = int(row.sample["turn_number"])
    entry: dict[str, Any] = {
        "id": f"{row.ref.conversation_id}_turn_{turn_number}" + (f"_part_{piece[0]}" if piece else ""),
        "speech": speech,
        "conversations": [{"from": "human", "value": "<speech>"}, {"from": "gpt", "value": target}],
        "conversation_id": row.ref.conversation_id,
        "turn_number": turn_number,
        "speaker_id": row.sample["speaker_id"],
        "target": kind,
    }
    if piece:
        entry.update(piece=piece[0], pieces=piece[1])
    return entry


def _probe_entry(row: ProbeRow, speech: str) -> dict[str, Any]:
    """A probe's item: its question's speech in, its answer out, and what an evaluation or a
    memory-aware trainer needs to know of it."""
    p = row.probe
    return {
        "id": f"{row.ref.conversation_id}_probe_{row.index}",
        "speech": speech,
        "conversations": [{"from": "human", "value": "<speech>"}, {"from": "gpt", "value": p.answer}],
        "conversation_id": row.ref.conversation_id,
        "turn_number": p.turn_number,
        "speaker_id": row.speaker_id,
        "target": row.kind,
        "probe_id": p.probe_id,
        "question": p.question,
        "answer": p.answer,
        "category": p.category,
        "adversarial": p.adversarial,
        "scoring": p.scoring,
        "time": p.time,
        "evidence": p.evidence,
        "distance_sec": p.distance_sec,
        "distance_tokens": p.distance_tokens,
    }


def _split(row: Row, pieces: _Pieces, path_of: Any) -> list[dict[str, Any]]:
    turn = row.turn
    if not turn.words:
        raise DatasetError(
            f"{_where(row)}: lasts over {WHISPER_WINDOW_SEC:g} s and has no word timings to split it "
            "at (use --long-turns drop)"
        )
    words = [
        {"word": w["word"], "start": w["start"] - turn.start_time, "end": w["end"] - turn.start_time}
        for w in turn.words
    ]
    if " ".join(w["word"] for w in words) != turn.text:
        raise DatasetError(
            f"{_where(row)}: its word timings do not give its transcript back; cannot split it"
        )
    try:
        parts = split_turn(words, _samples(row), SAMPLE_RATE, LIMIT)
    except CannotSplit as exc:
        raise DatasetError(
            f"{_where(row)}: cannot be split into pieces of at most {WHISPER_WINDOW_SEC:g} s: {exc} "
            "(use --long-turns drop)"
        ) from None
    out = []
    for k, p in enumerate(parts):
        text = " ".join(w["word"] for w in words[p.first : p.last])
        path = pieces.write(row, k, p.start, p.end, text)
        last = k == len(parts) - 1
        kind, target = (
            (row.kind, row.target if row.kind == "reply" else text) if last else ("transcript", text)
        )
        out.append(_entry(row, path_of(path), kind, target, (k, len(parts))))
    return out


def export_llama_omni(
    root: Path | str,
    out: Path | str,
    relative: bool = False,
    manifest: Path | None = None,
    long_turns: str = "refuse",
    probes: str = "auto",
) -> ExportSummary:
    """Writes a dataset's samples as LLaMA-Omni's training JSON at `out`; a turn over 30 s is
    refused, dropped or split, as `long_turns` says."""
    if long_turns not in LONG_TURNS:
        raise ConfigError("long_turns", f"choose {', '.join(LONG_TURNS)}", long_turns)
    root, out = Path(root), absolute(out)
    base = root.resolve()
    refs = open_dataset(root, manifest)
    pieces = _Pieces(out)

    def path_of(wav: Path) -> str:
        return os.path.relpath(wav, base) if relative else str(wav)

    counts = {"reply": 0, "transcript": 0, "answer": 0}
    long: list[str] = []
    left_out: list[str] = []
    n = 0

    def put(fh: TextIO, entry: dict[str, Any]) -> None:
        nonlocal n
        fh.write((",\n" if n else "") + json.dumps(entry, ensure_ascii=False))
        counts[entry["target"]] += 1
        n += 1

    try:
        with staged_file(out, on_commit=pieces.remove_others) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            fh.write("[\n")
            for row in conversation_rows(refs, probes, left_out):
                if isinstance(row, ProbeRow):
                    if _fits(row, long, long_turns):
                        put(fh, _probe_entry(row, path_of(row.audio)))
                    continue
                frames = _samples(row)
                if frames > LIMIT:
                    long.append(f"{_where(row)} ({frames / SAMPLE_RATE:.1f} s)")
                    if long_turns == "split":
                        for entry in _split(row, pieces, path_of):
                            put(fh, entry)
                    continue
                put(fh, _entry(row, path_of(row.audio), row.kind, row.target, None))
            if long and long_turns == "refuse":
                shown = _listed(long)
                raise SynthError(
                    f"{len(long)} turn(s) last longer than {WHISPER_WINDOW_SEC:g} s, which LLaMA-Omni "
                    f"cuts to Whisper's 30 s window: {shown}. Export with --long-turns drop (leave them "
                    "out) or --long-turns split (cut at sentence ends)"
                )
            fh.write("\n]\n")
            fh.close()
            pieces.finish()
    except BaseException:
        if pieces.made:
            shutil.rmtree(pieces.folder, ignore_errors=True)
        raise
    details = {k: v for k, v in counts.items() if v or k != "answer"}
    notes = []
    if long and long_turns == "drop":
        details["dropped_turns"] = len(long)
        notes.append(f"left out {len(long)} sample(s) over {WHISPER_WINDOW_SEC:g} s: " + _listed(long))
    elif long:
        details["split_turns"] = len(long)
        details["pieces"] = pieces.count
        notes.append(
            f"split {len(long)} turn(s) over {WHISPER_WINDOW_SEC:g} s into {pieces.count} pieces "
            f"in {pieces.folder}: " + _listed(long)
        )
    if left_out and probes == "auto":
        notes.append(probes_note(len(left_out), "--omni-probes"))
    return ExportSummary(n, "sample", details, tuple(notes))
