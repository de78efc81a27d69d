"""WAV-only folders: every folder holding audio files is one conversation, its files in natural
order are the turns, and the transcripts come from ASR. A speaker can be read from each file
name with `speaker_pattern`, a regular expression with a named group `speaker`
(e.g. `^(?P<speaker>[^_]+)_`); otherwise every turn is speaker "A"."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ..domain import Source
from ..errors import ConfigError, DialogError, SynthError
from ..ids import slug
from ..produce.recorded import AUDIO_SUFFIXES, RecordedGroup, Utterance


def _natural(path: Path) -> list[object]:
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", path.name)]


def read_audio_folders(
    root: Path,
    speaker_pattern: str | None = None,
) -> Iterator[RecordedGroup | DialogError]:
    """Every folder under `root` that holds audio files as one conversation, its speakers read from
    file names by `speaker_pattern`."""
    root = Path(root)
    if not root.is_dir():
        raise SynthError(f"{root}: not a folder")
    try:
        pattern = re.compile(speaker_pattern) if speaker_pattern else None
    except re.error as exc:
        raise ConfigError("speaker_pattern", str(exc)) from None
    if pattern is not None and "speaker" not in pattern.groupindex:
        raise ConfigError("speaker_pattern", "needs a named group (?P<speaker>...)")
    folders = sorted(
        {p.parent for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()},
        key=lambda p: _natural(p) if p != root else [],
    )
    if not folders:
        raise SynthError(f"{root}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    for n, folder in enumerate(folders):
        rel = folder.relative_to(root)
        cid = slug(str(rel)) if str(rel) != "." else slug(root.name)
        files = sorted(
            (p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()), key=_natural
        )
        utts = []
        try:
            for f in files:
                speaker = "A"
                if pattern is not None:
                    m = pattern.search(f.stem)
                    if not m:
                        raise DialogError(f"file name {f.name} does not match --speaker-pattern", str(folder))
                    speaker = m.group("speaker")
                utts.append(Utterance(speaker, f, None))
        except DialogError as exc:
            yield exc
            continue
        yield RecordedGroup(
            conversation_id=cid,
            source=Source(dataset="folder", index=n, path=str(folder)),
            corpus="recordings",
            utterances=tuple(utts),
            extra={"transcript_style": "asr"},
        )
