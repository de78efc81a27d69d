"""`synth validate`: check a dataset folder against the contract (DESIGN.md section 1) and
report every problem with the file it is in, so that a person can act on it, and what to run.

It also says what is going on in the folder (docs/reliability.md, "Tools on one dataset"): a
writer running now (a live record in `.run/`, held staging locks in `.tmp/`) or one that was
interrupted (staging folders nobody holds); a rewrite running now, one interrupted before its
switch (the dataset is the old one, whole) or during it (part old, part new until `--recover`
finishes it); and every conversation's sample settings against dataset.json's (one set per
dataset)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ..audio import SAMPLE_RATE, silence_bounds, to_pcm16
from ..dataset.fingerprint import (
    read_options,
    records_samples,
    sample_differences,
    sample_options,
    tokens_options,
)
from ..dataset.integrity import INTEGRITY_FILE
from ..dataset.integrity import problems as integrity_problems
from ..dataset.journal import JOURNAL, NEXT, REWRITE, hidden_new_files, marker, pending
from ..dataset.mixdown import mix_blocks, padded_sec, placements
from ..dataset.records import (
    MANIFEST,
    PROBES_FILE,
    ConversationMetadata,
    EventRecord,
    ManifestEntry,
    ProbeRecord,
    RecordError,
    TurnRecord,
    field_errors,
)
from ..dataset.writer import CLAIM, LOCK, STAGING_LOCK, TMP, WRITE, Holder, holders
from ..dataset.writer import REWRITE as REWRITING
from ..dataset.writer import is_held as held
from ..dialogs.text import clean_text, unclean
from ..ids import InvalidConversationId, check_conversation_id
from ..samples.builder import WHISPER_WINDOW_SEC, part_starts, target_kinds
from ..samples.retokenize import tokenize_command
from ..words import word_errors

DURATION_TOLERANCE_SEC = 0.01


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    conversations: int = 0
    turns: int = 0
    audio_sec: float = 0.0
    advice: list[str] = field(default_factory=list)  # what to run, for the errors and warnings

    @property
    def ok(self) -> bool:
        return not self.errors

    def format(self, max_lines: int = 50) -> str:
        lines = [
            f"{self.conversations} conversations, {self.turns} turns, {self.audio_sec / 3600:.3f} h of audio"
        ]
        for label, items in (("ERROR", self.errors), ("warning", self.warnings)):
            lines += [f"{label}: {m}" for m in items[:max_lines]]
            if len(items) > max_lines:
                lines.append(f"... and {len(items) - max_lines} more {label.lower()}s")
        lines += [f"to do: {m}" for m in self.advice]
        lines.append("OK" if self.ok else f"FAILED: {len(self.errors)} error(s)")
        return "\n".join(lines)


def _typed(obj: Any, record: type, where: str, errors: list[str]) -> bool:
    """Report every required field of `record` that `obj` lacks or mistypes."""
    found = field_errors(obj, record, where)
    errors += found
    return not found


def validate_dataset(root: Path | str) -> Report:
    root = Path(root)
    shown = shlex.quote(str(root))  # as the user gave it, for the commands it names
    report = Report()
    if not root.is_dir():
        report.errors.append(f"{root}: not a folder")
        return report
    live = holders(root)
    writers = [h for h in live if h.mode == WRITE]
    rewrites = [h for h in live if h.mode == REWRITING and not h.waiting]
    with _steady(root):  # the manifest and the folders as one moment of the writers' commits
        manifest = _read_manifest(root, report)
        conv_root = root / "conversations"
        folders = sorted(p.name for p in conv_root.iterdir()) if conv_root.is_dir() else []
    if not conv_root.is_dir():
        report.errors.append(f"{conv_root}: missing")
    listed = Counter(e["conversation_id"] for e in manifest if "conversation_id" in e)
    for cid, n in listed.items():
        if n > 1:
            report.errors.append(f"{MANIFEST}: conversation {cid!r} listed {n} times")
    for cid in sorted(set(listed) - set(folders)):
        report.errors.append(f"{MANIFEST}: {cid!r} has no folder conversations/{cid}")
    unlisted = [name for name in folders if name not in listed]
    for name in unlisted:
        report.errors.append(
            f"conversations/{name}: folder not in {MANIFEST} (a conversation an interrupted run renamed "
            "into place before listing it: nothing refers to it)"
        )
    if unlisted:
        report.advice.append(
            f"`synth validate {shown} --recover` removes the unlisted folder(s) (so does the next "
            "`synth generate` on the folder, which makes them again)"
        )
    by_id = {e["conversation_id"]: e for e in manifest if "conversation_id" in e}
    links = _links(root)
    for link in links:
        report.errors.append(
            f"{link.relative_to(root)}: a symbolic link (synth never makes one in a dataset, and its "
            "readers refuse to follow one)"
        )
    unsealed = 0
    damaged: dict[str, dict[str, Any] | None] = {}
    settings: dict[str, Any] = {}
    totals: dict[str, Any] = {}
    for name in folders:
        folder = conv_root / name
        if folder.is_dir() and not folder.is_symlink():
            meta = _check_conversation(folder, by_id.get(name), report)
            if meta is not None:
                settings[name] = tokens_options(meta.get("tokens"))
                totals[name] = meta.get("total_tokens")
            bad = [p for p in integrity_problems(folder, full=True) if not _rewrite_file(p.split(":")[0])]
            report.errors += [f"conversations/{name}: damaged: {problem}" for problem in bad]
            if bad:
                damaged[name] = meta
            unsealed += (folder / INTEGRITY_FILE).exists() is False
    if unsealed:
        report.warnings.append(
            f"{unsealed} conversation(s) without an integrity record (made before synth wrote one): "
            "their files cannot be checked against what was written"
        )
    if damaged:
        report.advice.append(_repair_advice(root, shown, damaged))
    _check_settings(root, settings, report)
    for name, total in sorted(totals.items()):
        entry = by_id.get(name) or {}
        if (
            isinstance(total, int)
            and isinstance(entry.get("total_tokens"), int)
            and entry["total_tokens"] != total
        ):
            report.errors.append(
                f"{MANIFEST} {name}: total_tokens {entry['total_tokens']} but its metadata.json says {total} "
                "(the curriculum filters read the manifest's)"
            )
    _check_rewrite(root, shown, rewrites, report)
    _check_tmp(root, shown, writers, report)
    return report


def _rewrite_file(name: str) -> bool:
    """A new version of a file written beside it by a rewrite (synth.dataset.journal)."""
    return name.startswith(".") and name.endswith(NEXT)


@contextlib.contextmanager
def _steady(root: Path, patience: float = 2.0) -> Iterator[None]:
    """Hold the writers' lock (shared) while the manifest and the folders are read, so that no
    commit is seen half-way (renamed, not yet listed); gives up after `patience` seconds (a
    writer stopped inside its commit) and reads anyway."""
    try:
        fd = os.open(root / LOCK, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        give_up = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > give_up:
                    break
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)


def _repair_advice(root: Path, shown: str, damaged: dict[str, dict[str, Any] | None]) -> str:
    """`synth generate --dialogs SOURCE --out DATASET --repair`, with the source the damaged
    conversations were made from (their metadata's, or another conversation's)."""
    sources = {s for s in map(_source_of, damaged.values()) if s is not None}
    if not sources:
        for folder in sorted((root / "conversations").iterdir())[:20]:
            with contextlib.suppress(OSError, ValueError, UnicodeDecodeError):
                found = _source_of(json.loads((folder / "metadata.json").read_text(encoding="utf-8")))
                if found is not None:
                    sources.add(found)
                    break
    source = shlex.quote(next(iter(sources))) if len(sources) == 1 else "SOURCE"
    names = ", ".join(sorted(damaged)[:5]) + (" ..." if len(damaged) > 5 else "")
    said = "" if len(sources) == 1 else " (SOURCE: the dialogs the dataset was made from)"
    return (
        f"{len(damaged)} damaged conversation(s) ({names}): `synth generate --dialogs {source} --out "
        f"{shown} --repair` makes them again{said}, with the options dataset.json records"
    )


def _source_of(meta: Any) -> str | None:
    source = meta.get("source") if isinstance(meta, dict) else None
    if not isinstance(source, dict):
        return None
    path = source.get("path") or source.get("dataset")
    return path if isinstance(path, str) and path else None


def _describe_settings(settings: Any) -> str:
    if settings is None:
        return "no training samples"
    keys = ("speech_profile", "tokenizer", "format", "pad_multiple")
    return ", ".join(f"{k.replace('_', ' ')} {settings[k]}" for k in keys if k in settings) or "its settings"


def _check_settings(root: Path, settings: dict[str, Any], report: Report) -> None:
    """One set of sample settings per dataset: every conversation's `tokens` agree with
    dataset.json (or, where it records none, with most conversations)."""
    recorded = read_options(root)
    if recorded is not None and records_samples(recorded):
        expected, whose = sample_options(recorded), "dataset.json"
    elif settings:
        counted = Counter(json.dumps(v, sort_keys=True) for v in settings.values())
        expected, whose = json.loads(counted.most_common(1)[0][0]), "most conversations"
    else:
        return
    wrong = []
    for name, got in sorted(settings.items()):
        differ = sample_differences(expected, got)
        if differ:
            wrong.append(name)
            report.errors.append(
                f"conversations/{name}/metadata.json: tokens made with {', '.join(differ)} (the dataset's "
                f"settings, as {whose} says: {_describe_settings(expected)})"
            )
    if wrong:
        fix = (
            f"`{tokenize_command(str(root), expected)}` rewrites every conversation with the dataset's settings"
            if expected is not None
            else "the dataset has no training samples: make the conversations named again, or tokenize the dataset"
        )
        report.advice.append(f"{len(wrong)} conversation(s) with other sample settings: {fix}")


def _check_rewrite(root: Path, shown: str, rewrites: list[Holder], report: Report) -> None:
    """A rewrite (synth tokenize, synth check) running now, interrupted before its switch (the
    old dataset, whole) or during it (part old, part new), or hidden files no rewrite marks."""
    info = marker(root)
    journal = (root / JOURNAL).exists()
    into = ""
    if info:
        new = sample_options(info.get("options") or {}) if info.get("options") else None
        into = f" (to {_describe_settings(new)})" if new else ""
    if rewrites:
        report.warnings.append(
            f"{rewrites[0].describe()} is rewriting this dataset now{into}: until it switches its new "
            "files in, the dataset is the old one; other tools on it are refused meanwhile"
        )
        report.advice.append("validate again once it has finished")
        return
    who = ""
    if info:
        who = f" (`{info.get('command', '?')}`, pid {info.get('pid', '?')}, in {info.get('cwd', '?')})"
    if journal:
        report.errors.append(
            f"{JOURNAL}: a rewrite{who}{into} was interrupted while it switched its new files in "
            f"({len(pending(root))} files): the dataset is part old, part new until it is finished"
        )
        report.advice.append(
            f"`synth validate {shown} --recover` finishes the switch (so does any writer's start: synth "
            "generate, serve, merge, tokenize): the dataset is then the new one" + into
        )
        return
    stray = len([p for p in hidden_new_files(root)])
    if info is not None:
        old = read_options(root)
        was = (
            f" ({_describe_settings(sample_options(old))}, as dataset.json says)"
            if old and records_samples(old)
            else ""
        )
        report.warnings.append(
            f"{REWRITE}: a rewrite{who}{into} was interrupted before its switch: the dataset is the old "
            f"one{was}, whole; the {stray} hidden new file(s) it left (.NAME{NEXT}) change nothing"
        )
        again = (
            f"`{tokenize_command(str(root), sample_options(info['options']) or {})}`"
            if info.get("tool") == "synth tokenize" and info.get("options")
            else f"`{info.get('command', 'the rewrite')}` (in {info.get('cwd', '?')})"
        )
        report.advice.append(
            f"`synth validate {shown} --recover` removes what it left (so does the next writer); "
            f"run {again} again for the new settings"
        )
    elif stray:
        report.warnings.append(
            f"{stray} hidden file(s) of a rewrite (.NAME{NEXT}) that no rewrite marks: they change nothing"
        )
        report.advice.append(f"`synth validate {shown} --recover` removes them")


def _check_tmp(root: Path, shown: str, writers: list[Holder], report: Report) -> None:
    """Conversations being written now (their staging locks held) or left by an interrupted run."""
    tmp = root / TMP
    running = gone = claims = 0
    try:
        entries = list(tmp.iterdir())
    except OSError:
        entries = []
    for entry in entries:
        if entry.is_dir():
            if held(entry.with_name(entry.name + STAGING_LOCK)):
                running += 1
            else:
                gone += 1
        elif entry.name.endswith(CLAIM) and not held(entry):
            claims += 1
    if writers:
        report.warnings.append(
            f"being written now by {'; '.join(h.describe() for h in writers)}: {running} conversation(s) "
            "in progress, not part of the dataset until each is listed whole"
        )
        report.advice.append("validate again once it has finished, for the whole dataset")
    elif running:
        report.warnings.append(
            f"{TMP}: {running} conversation(s) being written now by a running writer (their locks are held)"
        )
    if gone or claims:
        report.warnings.append(
            f"{TMP}: {gone} unfinished conversation(s) and {claims} claim(s) of an interrupted run (no "
            "process holds their locks): nothing of them is listed, nothing is lost (the next run makes them)"
        )
        report.advice.append(
            f"`synth validate {shown} --recover` removes what the interrupted run left (so does the next "
            "writer on this folder)"
        )


def _read_manifest(root: Path, report: Report) -> list[dict[str, Any]]:
    path = root / MANIFEST
    if not path.is_file():
        report.errors.append(f"{MANIFEST}: missing")
        return []
    entries = []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        report.errors.append(
            f"{MANIFEST}: last line is unterminated (an interrupted or failed write; the next "
            "`synth generate` or `synth serve` on this folder repairs it)"
        )
    for n, raw in enumerate(data.splitlines(), start=1):
        where = f"{MANIFEST} line {n}"
        try:
            entry = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            report.errors.append(
                f"{where}: not valid JSON (a torn write, e.g. a full disk; the next `synth generate` "
                "or `synth serve` on this folder repairs it)"
            )
            continue
        if not _typed(entry, ManifestEntry, where, report.errors):
            continue
        if "total_tokens" not in entry:
            report.errors.append(f"{where}: missing field 'total_tokens'")
        if entry["path"] != f"conversations/{entry['conversation_id']}":
            report.errors.append(f"{where}: path {entry['path']!r} does not match the id")
        entries.append(entry)
    return entries


def _check_conversation(folder: Path, entry: dict[str, Any] | None, report: Report) -> dict[str, Any] | None:
    """Check one conversation; return its metadata (None when it cannot be read as metadata)."""
    where = f"conversations/{folder.name}"
    try:
        check_conversation_id(folder.name)
    except InvalidConversationId as exc:
        report.errors.append(f"{where}: {exc}")
    try:
        meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        report.errors.append(f"{where}/metadata.json: missing")
        return None
    except (ValueError, UnicodeDecodeError) as exc:
        report.errors.append(f"{where}/metadata.json: not valid JSON ({exc})")
        return None
    if not _typed(meta, ConversationMetadata, f"{where}/metadata.json", report.errors):
        return None
    report.conversations += 1
    if meta["conversation_id"] != folder.name:
        report.errors.append(
            f"{where}/metadata.json: conversation_id {meta['conversation_id']!r} "
            "does not match the folder name"
        )
    turns = meta["turns"]
    if meta["total_turns"] != len(turns):
        report.errors.append(
            f"{where}/metadata.json: total_turns {meta['total_turns']} but {len(turns)} turns listed"
        )
    if not turns:
        report.errors.append(f"{where}/metadata.json: no turns")
    speakers = set(meta["speakers"])
    tokens = meta.get("tokens") if isinstance(meta.get("tokens"), dict) else {}
    window = WHISPER_WINDOW_SEC if tokens.get("speech_profile") == "llama-omni" else None
    synthesized = (meta.get("engine") or {}).get("engine") not in (None, "recorded")
    previous_start = 0.0
    speaker_end: dict[str, float] = {}
    latest_end = 0.0
    expected_files = {"metadata.json", "samples.jsonl", INTEGRITY_FILE}
    for i, turn in enumerate(turns):
        tw = f"{where}/metadata.json turns[{i}]"
        if not _typed(turn, TurnRecord, tw, report.errors):
            continue
        if turn["turn_id"] != i:
            report.errors.append(f"{tw}: turn_id {turn['turn_id']}, expected {i} (ids must be 0..n-1)")
        if turn["speaker"] not in speakers:
            report.errors.append(f"{tw}: speaker {turn['speaker']!r} not in speakers")
        expected_files |= {turn["audio_file"], turn["transcript_file"]}
        duration = _check_wav(folder / turn["audio_file"], f"{where}/{turn['audio_file']}", report)
        text = _check_transcript(
            folder / turn["transcript_file"], f"{where}/{turn['transcript_file']}", report
        )
        if text is not None and isinstance(turn.get("text"), str) and text != turn["text"]:
            report.errors.append(
                f"{where}/{turn['transcript_file']}: says {text[:60]!r} but metadata turns[{i}].text is "
                f"{turn['text'][:60]!r} (the transcript must be exactly what was said)"
            )
        if duration is not None and synthesized:
            _check_edges(folder / turn["audio_file"], f"{where}/{turn['audio_file']}", report)
        if "words" in turn and isinstance(turn.get("text", text), str):
            for problem in word_errors(
                turn.get("text", text), turn["words"], turn["start_time"], turn["end_time"]
            ):
                report.errors.append(f"{tw}: {problem}")
        report.turns += 1
        if duration is not None:
            report.audio_sec += duration
            if abs(duration - turn["duration_sec"]) > DURATION_TOLERANCE_SEC:
                report.errors.append(
                    f"{tw}: duration_sec {turn['duration_sec']} but the WAV lasts {duration:.4f} s"
                )
        if window is not None and turn["duration_sec"] > window + DURATION_TOLERANCE_SEC:
            report.errors.append(
                f"{tw}: lasts {turn['duration_sec']:.2f} s, longer than the {window:g} s Whisper window of "
                "the llama-omni speech profile (the model would lose its end)"
            )
        if abs(turn["end_time"] - turn["start_time"] - turn["duration_sec"]) > DURATION_TOLERANCE_SEC:
            report.errors.append(f"{tw}: end_time - start_time != duration_sec")
        if turn["start_time"] < previous_start - DURATION_TOLERANCE_SEC:
            report.errors.append(
                f"{tw}: starts at {turn['start_time']} before the turn before it (start order)"
            )
        if turn["start_time"] < speaker_end.get(turn["speaker"], 0.0) - DURATION_TOLERANCE_SEC:
            report.errors.append(f"{tw}: starts before the same speaker's previous turn ends")
        previous_start = turn["start_time"]
        speaker_end[turn["speaker"]] = turn["end_time"]
        latest_end = max(latest_end, turn["end_time"])
    if turns and abs(meta["total_duration_sec"] - latest_end) > DURATION_TOLERANCE_SEC:
        report.errors.append(
            f"{where}/metadata.json: total_duration_sec "
            f"{meta['total_duration_sec']} is not the end of the latest-ending turn ({latest_end})"
        )
    expected_files |= _check_events(folder, meta, where, report)
    expected_files |= _check_conversation_audio(folder, meta, where, report)
    expected_files |= _check_probes(folder, meta, where, report)
    if (folder / "samples.jsonl").exists():
        in_samples = len(meta.get("probes") or []) if tokens.get("probes_in_samples") else 0
        _check_samples(folder / "samples.jsonl", f"{where}/samples.jsonl", len(turns), report, in_samples)
        _check_targets(folder / "samples.jsonl", meta, f"{where}/samples.jsonl", report)
    extra = sorted(
        p.name for p in folder.iterdir() if p.name not in expected_files and not _rewrite_file(p.name)
    )
    if extra:
        report.warnings.append(f"{where}: unexpected files {extra}")
    if entry is not None:
        if entry["num_turns"] != meta["total_turns"]:
            report.errors.append(
                f"{MANIFEST} {folder.name}: num_turns {entry['num_turns']} but "
                f"metadata has {meta['total_turns']}"
            )
        if abs(entry["duration_sec"] - meta["total_duration_sec"]) > DURATION_TOLERANCE_SEC:
            report.errors.append(f"{MANIFEST} {folder.name}: duration_sec does not match metadata")
    return meta


def _check_events(folder: Path, meta: dict[str, Any], where: str, report: Report) -> set[str]:
    """Events (backchannels): typed, by a known speaker, their audio lasting their span."""
    events = meta.get("events", [])
    if not isinstance(events, list):
        report.errors.append(f"{where}/metadata.json: 'events' is not a list")
        return set()
    files = set()
    for i, event in enumerate(events):
        ew = f"{where}/metadata.json events[{i}]"
        if not _typed(event, EventRecord, ew, report.errors):
            continue
        if event["speaker"] not in meta["speakers"]:
            report.errors.append(f"{ew}: speaker {event['speaker']!r} not in speakers")
        if not 0 <= event["start"] <= event["end"]:
            report.errors.append(f"{ew}: start {event['start']} and end {event['end']} are not ordered")
        name = event.get("audio_file")
        if isinstance(name, str):
            files.add(name)
            duration = _check_wav(folder / name, f"{where}/{name}", report)
            if (
                duration is not None
                and abs(duration - (event["end"] - event["start"])) > DURATION_TOLERANCE_SEC
            ):
                report.errors.append(
                    f"{ew}: lasts {event['end'] - event['start']:.3f} s but its WAV {duration:.3f} s"
                )
    return files


def _check_conversation_audio(folder: Path, meta: dict[str, Any], where: str, report: Report) -> set[str]:
    """conversation.wav: 16 kHz two-channel PCM16 whose clean channels hold exactly the turns and
    events that metadata puts there (an augmented channel is checked for its length only)."""
    name = meta.get("conversation_audio")
    if name is None:
        return set()
    cw = f"{where}/{name}"
    try:
        record = ConversationMetadata.from_dict(meta)
        info = sf.info(str(folder / name))
    except (RecordError, ValueError, TypeError) as exc:
        report.errors.append(f"{where}/metadata.json: {exc}")
        return {name}
    except (RuntimeError, OSError) as exc:  # libsndfile: missing or unreadable
        report.errors.append(f"{cw}: unreadable ({exc})")
        return {name}
    channels = record.channels or []
    members = [s for c in channels for s in c]
    if (
        len(channels) != 2
        or sorted(members) != sorted(record.speakers)
        or record.main_speaker not in channels[0]
    ):
        report.errors.append(
            f"{where}/metadata.json: 'channels' must put every speaker on one of two channels, "
            "the main speaker on channel 0"
        )
        return {name}
    rate = record.conversation_audio_rate or SAMPLE_RATE
    if (info.samplerate, info.channels, info.subtype) != (rate, 2, "PCM_16"):
        report.errors.append(
            f"{cw}: expected {rate} Hz two-channel PCM16 (metadata conversation_audio_rate), got "
            f"{info.samplerate} Hz, {info.channels} channels, {info.subtype}"
        )
        return {name}
    augmented = {int((record.extra.get("augmentation") or {}).get("channel", -1))}
    try:
        items = placements(folder, record, channels)
        expected_frames = max((p.start + p.length for p in items), default=0) * rate // SAMPLE_RATE
        pad = padded_sec(record)
        if pad is not None and info.frames < round(pad * rate):
            report.errors.append(
                f"{cw}: {info.frames} frames, the session's windows need {round(pad * rate)}"
            )
            return {name}
        if info.frames < expected_frames - 2:
            report.errors.append(f"{cw}: {info.frames} frames, the timeline needs {expected_frames}")
            return {name}
        if rate == SAMPLE_RATE:
            _same_samples(folder / name, items, augmented, cw, report)
        else:
            _same_speech(folder / name, items, rate, augmented, cw, report)
    except (RuntimeError, OSError, KeyError) as exc:
        report.errors.append(f"{cw}: cannot be checked against its turns ({exc})")
    return {name}


def _same_samples(path: Path, items: list[Any], augmented: set[int], cw: str, report: Report) -> None:
    """A 16 kHz conversation.wav: its clean channels equal the turns' and events' samples."""
    with sf.SoundFile(str(path)) as fh:
        for b0, expected in mix_blocks(items):
            got = fh.read(expected.shape[0], dtype="int16", always_2d=True)
            for ch in (0, 1):
                if ch not in augmented and not np.array_equal(got[:, ch], to_pcm16(expected[:, ch])):
                    at = b0 + int(np.flatnonzero(got[:, ch] != to_pcm16(expected[:, ch]))[0])
                    report.errors.append(
                        f"{cw}: channel {ch} differs from the turns and events at {at / SAMPLE_RATE:.3f} s"
                    )
                    return


FULLBAND_MATCH = 0.05  # residual energy of a full-band channel brought to 16 kHz vs the turns


def _same_speech(
    path: Path, items: list[Any], rate: int, augmented: set[int], cw: str, report: Report
) -> None:
    """A full-band conversation.wav (made from the engine's own audio, not from the turn WAVs):
    each clean channel, brought down to 16 kHz, holds the turns and events that metadata puts
    there, where it puts them (residual under FULLBAND_MATCH of their energy in every block)."""
    import soxr

    stream = soxr.ResampleStream(rate, SAMPLE_RATE, 2, dtype="float32")
    pending = np.zeros((0, 2), dtype=np.float32)
    with sf.SoundFile(str(path)) as fh:
        for b0, expected in mix_blocks(items):
            while pending.shape[0] < expected.shape[0]:
                raw = fh.read(rate, dtype="float32", always_2d=True)
                pending = np.concatenate([pending, stream.resample_chunk(raw, last=not raw.shape[0])])
                if not raw.shape[0]:
                    break
            got, pending = pending[: expected.shape[0]], pending[expected.shape[0] :]
            if got.shape[0] < expected.shape[0]:
                got = np.pad(got, ((0, expected.shape[0] - got.shape[0]), (0, 0)))
            for ch in (0, 1):
                energy = float(np.sum(expected[:, ch] ** 2))
                if ch in augmented or energy == 0:
                    continue
                residual = float(np.sum((got[:, ch] - expected[:, ch]) ** 2)) / energy
                if residual > FULLBAND_MATCH:
                    report.errors.append(
                        f"{cw}: channel {ch} does not hold the turns and events of metadata near "
                        f"{b0 / SAMPLE_RATE:.1f} s (residual {residual:.2f} of their energy)"
                    )
                    return


def _links(root: Path) -> list[Path]:
    """Every symbolic link under the dataset root (links are not followed while looking)."""
    out = []
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(base) / name
            if path.is_symlink():
                out.append(path)
    return sorted(out)


def _check_samples(
    path: Path, where: str, num_turns: int, report: Report, probes: int = 0, first: int = 0
) -> None:
    """One sample per turn (then one per probe, where they are in the training samples), in
    turn order from `first`, with aligned arrays."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        report.errors.append(f"{where}: not UTF-8")
        return
    if len(lines) != num_turns + probes:
        what = f"{num_turns} turns" + (f" and {probes} probes" if probes else "")
        report.errors.append(f"{where}: {len(lines)} samples for {what}")
    for n, line in enumerate(lines, start=1):
        try:
            s = json.loads(line)
            ids, labels, mask = s["input_ids"], s["labels"], s["attention_mask"]
            ok = (
                s["turn_number"] == first + n - 1
                and len(ids) == len(labels) == len(mask)
                and 0 < s["original_length"] <= len(ids)
                and sum(mask) == s["original_length"]
            )
        except (ValueError, KeyError, TypeError):
            report.errors.append(
                f"{where} line {n}: not a sample (JSON with input_ids, labels, "
                "attention_mask, turn_number, original_length)"
            )
            continue
        if not ok:
            report.errors.append(f"{where} line {n}: turn_number or array lengths are inconsistent")


def _check_probes(folder: Path, meta: dict[str, Any], where: str, report: Report) -> set[str]:
    """Memory probes (docs/memory.md): typed, their question's WAV and transcript as listed, each
    asked after its evidence, which names the conversation's turns with their times, distances that
    match the timeline, numbered after the turns; their samples (probes.jsonl) one per probe, each
    an `answer` of its probe."""
    probes = meta.get("probes", [])
    if not isinstance(probes, list):
        report.errors.append(f"{where}/metadata.json: 'probes' is not a list")
        return set()
    files: set[str] = set()
    turns = meta["turns"]
    n = len(turns)
    ids: set[str] = set()
    for k, probe in enumerate(probes):
        pw = f"{where}/metadata.json probes[{k}]"
        if not _typed(probe, ProbeRecord, pw, report.errors):
            continue
        if probe["probe_id"] in ids:
            report.errors.append(f"{pw}: probe_id {probe['probe_id']!r} is listed twice")
        ids.add(probe["probe_id"])
        if probe["turn_number"] != n + k:
            report.errors.append(
                f"{pw}: turn_number {probe['turn_number']}, expected {n + k} (after the turns)"
            )
        files |= {probe["audio_file"], probe["transcript_file"]}
        duration = _check_wav(folder / probe["audio_file"], f"{where}/{probe['audio_file']}", report)
        if duration is not None and abs(duration - probe["duration_sec"]) > DURATION_TOLERANCE_SEC:
            report.errors.append(
                f"{pw}: duration_sec {probe['duration_sec']} but the WAV lasts {duration:.4f} s"
            )
        text = _check_transcript(
            folder / probe["transcript_file"], f"{where}/{probe['transcript_file']}", report
        )
        if text is not None and text != probe["question"]:
            report.errors.append(f"{where}/{probe['transcript_file']}: is not the probe's question")
        if isinstance(probe.get("answer_audio_file"), str):
            files.add(probe["answer_audio_file"])
            _check_wav(folder / probe["answer_audio_file"], f"{where}/{probe['answer_audio_file']}", report)
        _check_evidence(probe, turns, meta["total_duration_sec"], pw, report)
    path = folder / PROBES_FILE
    if path.exists():
        files.add(PROBES_FILE)
        _check_samples(path, f"{where}/{PROBES_FILE}", 0, report, len(probes), n)
        try:
            samples = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        except (ValueError, UnicodeDecodeError):
            return files
        for k, (sample, probe) in enumerate(zip(samples, probes)):
            if (
                not isinstance(sample, dict)
                or sample.get("target") != "answer"
                or sample.get("probe_id") != probe.get("probe_id")
            ):
                report.errors.append(
                    f"{where}/{PROBES_FILE} line {k + 1}: not the `answer` sample of probe {probe.get('probe_id')!r}"
                )
                break
    return files


def _check_evidence(probe: dict[str, Any], turns: list[Any], total: float, pw: str, report: Report) -> None:
    """A probe's evidence names turns with their times, ends before the probe is asked, and its
    distances are the timeline's."""
    tol = DURATION_TOLERANCE_SEC
    ends = []
    for e, ev in enumerate(probe["evidence"]):
        tid = ev.get("turn_id") if isinstance(ev, dict) else None
        if not isinstance(tid, int) or isinstance(tid, bool) or not 0 <= tid < len(turns):
            report.errors.append(f"{pw}: evidence[{e}] names no turn of the conversation")
            return
        turn = turns[tid]
        if (
            abs(ev.get("start", -1) - turn["start_time"]) > tol
            or abs(ev.get("end", -1) - turn["end_time"]) > tol
        ):
            report.errors.append(f"{pw}: evidence[{e}]'s times are not turn {tid}'s")
            return
        ends.append(turn["end_time"])
    if not ends:
        report.errors.append(f"{pw}: no evidence")
        return
    time = probe["time"]
    if time < max(ends) - tol:
        report.errors.append(f"{pw}: asked at {time} s, before its evidence ends ({max(ends)} s)")
    if time > total + tol:
        report.errors.append(f"{pw}: asked at {time} s, after the conversation's end ({total} s)")
    dist = probe["distance_sec"]
    for key, end in (("latest", max(ends)), ("earliest", min(ends))):
        if not isinstance(dist.get(key), (int, float)) or abs(dist[key] - (time - end)) > 2 * tol:
            report.errors.append(
                f"{pw}: distance_sec.{key} {dist.get(key)} is not {time - end:.3f} (time - evidence end)"
            )


def _check_targets(path: Path, meta: dict[str, Any], where: str, report: Report) -> None:
    """Every sample's target kind follows the rules (synth.samples.builder.target_kinds: a reply
    is the next other speaker's words within the same session part), and metadata says the same
    kind per turn. Checked where metadata records the kinds (datasets made before them had
    other rules)."""
    turns = meta["turns"]
    try:
        samples = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        records = [TurnRecord.from_dict(t) for t in turns]
    except (ValueError, RecordError, UnicodeDecodeError):
        return  # reported by the other checks
    for i, (sample, turn) in enumerate(zip(samples, records)):
        if isinstance(sample, dict) and sample.get("audio_file", turn.audio_file) != turn.audio_file:
            report.errors.append(
                f"{where} line {i + 1}: audio_file {str(sample.get('audio_file'))[:80]!r} is not turn {i}'s "
                f"{turn.audio_file!r}"
            )
            return
    if not turns or not all(isinstance(t, dict) and "target" in t for t in turns):
        return
    fmt = samples[0].get("format", "chat") if samples else "chat"
    expected = target_kinds(records, part_starts(meta.get("segments")), fmt)
    for i, (sample, turn, (kind, _, _)) in enumerate(zip(samples, records, expected)):
        if sample.get("target") != kind or turn.target != kind:
            report.errors.append(
                f"{where} line {i + 1}: target {sample.get('target')!r} (metadata: {turn.target!r}), "
                f"but turn {i} is a {kind!r}: a reply is the next other speaker's words in the same part"
            )
            return


EDGE_SILENCE_TOLERANCE_SEC = 0.125  # TURN_PAD_SEC (0.1) and two 10 ms detection frames


def _check_edges(path: Path, where: str, report: Report) -> None:
    """A synthesized turn starts and ends with the documented 0.1 s of silence (a warning: other
    tools' data may differ)."""
    try:
        audio, rate = sf.read(str(path), dtype="float32")
    except (RuntimeError, OSError):
        return
    if audio.ndim != 1 or not audio.size:
        return
    lo, hi = silence_bounds(audio, rate, 0.0)
    lead, trail = lo / rate, (audio.shape[0] - hi) / rate
    if hi > lo and max(lead, trail) > EDGE_SILENCE_TOLERANCE_SEC:
        report.warnings.append(
            f"{where}: {lead:.2f} s of silence before the speech and {trail:.2f} s after "
            "(synth pads turns with 0.1 s)"
        )


def _check_wav(path: Path, where: str, report: Report) -> float | None:
    if not path.is_file():
        report.errors.append(f"{where}: missing")
        return None
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile's errors: unreadable or not audio
        report.errors.append(f"{where}: unreadable audio ({exc})")
        return None
    problems = []
    if info.format != "WAV":
        problems.append(f"format {info.format}")
    if info.samplerate != SAMPLE_RATE:
        problems.append(f"{info.samplerate} Hz")
    if info.channels != 1:
        problems.append(f"{info.channels} channels")
    if info.subtype != "PCM_16":
        problems.append(f"subtype {info.subtype}")
    if info.frames == 0:
        problems.append("no samples")
    if problems:
        report.errors.append(
            f"{where}: expected 16 kHz mono PCM16 WAV with audio, got " + ", ".join(problems)
        )
    return info.frames / info.samplerate if info.samplerate else None


def _check_transcript(path: Path, where: str, report: Report) -> str | None:
    """Check a transcript file; return its text (None when it cannot be read)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        report.errors.append(f"{where}: missing")
        return None
    except UnicodeDecodeError:
        report.errors.append(f"{where}: not UTF-8")
        return None
    body = text.rstrip("\n")
    if not body.strip():
        report.errors.append(f"{where}: empty transcript")
    elif "\n" in body:
        report.errors.append(f"{where}: transcript has more than one line")
    elif unclean(body):
        report.errors.append(f"{where}: transcript is not clean text: {unclean(body)}")
    elif clean_text(body) != body:
        report.errors.append(
            f"{where}: transcript is not clean text (extra spaces, tokenized punctuation or curly quotes)"
        )
    return body
