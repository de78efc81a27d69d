"""One conversation folder as the checks see it: its metadata read and typed, its manifest line,
the headers of its WAVs read once; the checks of the folder as a whole (its id, its turn count,
files nobody names)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...dataset.integrity import INTEGRITY_FILE
from ...dataset.journal import NEXT
from ...dataset.records import (
    METADATA_FILE,
    PROBES_FILE,
    SAMPLES_FILE,
    ConversationMetadata,
    EventRecord,
    ProbeRecord,
    TurnRecord,
    field_errors,
)
from ...errors import InvalidConversationId
from ...ids import check_conversation_id
from .problems import Place, Problem, in_conversation
from .wav import WavCheck, check_wav


@dataclass
class Conversation:
    """A conversation whose metadata.json is a typed `ConversationMetadata` (as a dict: the
    checks read what is there, not what a record would make of it), and its manifest line (None
    when it is not listed)."""

    folder: Path
    meta: dict[str, Any]
    entry: dict[str, Any] | None = None
    _wavs: dict[str, WavCheck] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.folder.name

    def place(self, file: str | None = None, record: str = "", turn: int | None = None) -> Place:
        return in_conversation(self.name, file, record, turn)

    def wav(self, name: str) -> WavCheck:
        """A 16 kHz mono WAV of this folder checked (once: the turns' check and the totals share it)."""
        if name not in self._wavs:
            self._wavs[name] = check_wav(self.folder / name, self.place(name))
        return self._wavs[name]


def read_conversation(
    folder: Path, entry: dict[str, Any] | None
) -> tuple[Conversation | None, list[Problem]]:
    """The folder's name checked as an id and its metadata.json read and typed (None when it
    cannot be read as metadata)."""
    here = in_conversation(folder.name)
    problems = []
    try:
        check_conversation_id(folder.name)
    except InvalidConversationId as exc:
        problems.append(here.error(str(exc)))
    at = in_conversation(folder.name, METADATA_FILE)
    try:
        meta = json.loads((folder / METADATA_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, [*problems, at.error("missing")]
    except (ValueError, UnicodeDecodeError) as exc:
        return None, [*problems, at.error(f"not valid JSON ({exc})")]
    found = at.typed(meta, ConversationMetadata)
    if found:
        return None, problems + found
    return Conversation(folder, meta, entry), problems


def check_header(conv: Conversation) -> list[Problem]:
    """The metadata names this folder, counts its turns, and has some."""
    at = conv.place(METADATA_FILE)
    meta, problems = conv.meta, []
    if meta["conversation_id"] != conv.name:
        problems.append(
            at.error(
                f"conversation_id {meta['conversation_id']!r} does not match the folder name",
                "conversation_id",
            )
        )
    turns = meta["turns"]
    if meta["total_turns"] != len(turns):
        problems.append(
            at.error(f"total_turns {meta['total_turns']} but {len(turns)} turns listed", "total_turns")
        )
    if not turns:
        problems.append(at.error("no turns", "turns"))
    return problems


def check_files(conv: Conversation) -> list[Problem]:
    """Files of the folder that no record names (a warning: they change nothing)."""
    named = named_files(conv)
    extra = sorted(p.name for p in conv.folder.iterdir() if p.name not in named and not rewrite_file(p.name))
    return [conv.place().warning(f"unexpected files {extra}")] if extra else []


def named_files(conv: Conversation) -> set[str]:
    """The files the folder should hold: its metadata, samples and integrity record, and the files
    its typed turns, events and probes name (and probes.jsonl where it is)."""
    meta = conv.meta
    out = {METADATA_FILE, SAMPLES_FILE, INTEGRITY_FILE}
    for turn in meta["turns"]:
        if not field_errors(turn, TurnRecord, ""):
            out |= {turn["audio_file"], turn["transcript_file"]}
    events = meta.get("events", [])
    for event in events if isinstance(events, list) else []:
        if not field_errors(event, EventRecord, "") and isinstance(event.get("audio_file"), str):
            out.add(event["audio_file"])
    if meta.get("conversation_audio") is not None:
        out.add(meta["conversation_audio"])
    probes = meta.get("probes", [])
    if isinstance(probes, list):
        for probe in probes:
            if not field_errors(probe, ProbeRecord, ""):
                out |= {probe["audio_file"], probe["transcript_file"]}
                if isinstance(probe.get("answer_audio_file"), str):
                    out.add(probe["answer_audio_file"])
        if (conv.folder / PROBES_FILE).exists():
            out.add(PROBES_FILE)
    return out


def rewrite_file(name: str) -> bool:
    """A new version of a file written beside it by a rewrite (synth.dataset.journal)."""
    return name.startswith(".") and name.endswith(NEXT)
