"""Conversation Chronicles (jihyoung/ConversationChronicles, CC-BY-4.0; Jang et al., EMNLP 2023):
two people in a given relationship who talk in five sessions, hours to years apart. One episode,
one coherent conversation (synth.dialogs.sources.coherent). No questions: no probes.

An episode is a record `{"dataID", "relationship", "time_interval": ["Start", "A few hours after",
...], "summary": [...], "first_session_dialogue": [...], "first_session_speakers": [...], ...,
"fifth_session_dialogue", "fifth_session_speakers"}`, read from JSON Lines (the release's
`train.json` etc. are JSON Lines), from parquet, or from the hub (`hf:jihyoung/ConversationChronicles`).

- Each session, in order, is a segment; its info: its number and its `time_interval` (the time
  since the session before, the first "Start"), as given, and the episode's `relationship` (in
  every segment, so it survives a first session that cannot be spoken).
- Utterances are paired with the speakers list of their session ("Classmates A", "Classmates B":
  kept as given); an utterance without a speaker is left out and noted.
- A session the record does not have (a missing or null column, as in copies of MSC made in
  this layout with four sessions) is passed over; one that is there but not a list is left out
  and noted. The summaries are not kept."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ...domain import Dialog, Source
from ...errors import DialogError
from ..build import DialogLimits
from .coherent import RawSession, RawTurn, build_coherent
from .json_items import file_dialogs, row_dialogs

DATASET = "chronicles"
SESSIONS = ("first", "second", "third", "fourth", "fifth")


def looks_like_chronicles(record: Any) -> bool:
    """A Conversation Chronicles episode: its first session's utterances."""
    return isinstance(record, Mapping) and "first_session_dialogue" in record


def read_chronicles(
    path: Path, limits: DialogLimits, session_gap_sec: float | None = None
) -> Iterator[Dialog | DialogError]:
    """Each episode of a JSON Lines file (or a JSON array) as one coherent conversation; a line
    that cannot be read is a DialogError naming it."""
    return file_dialogs(path, DATASET, chronicle_dialog, limits, session_gap_sec)


def chronicles_rows(
    rows: Iterable[Any], split: str | None, limits: DialogLimits, session_gap_sec: float | None = None
) -> Iterator[Dialog | DialogError]:
    """Episodes as rows of a Hugging Face dataset or parquet file."""
    return row_dialogs(rows, split, DATASET, chronicle_dialog, limits, session_gap_sec)


def chronicle_dialog(
    record: Any, source: Source, default_id: str, limits: DialogLimits, session_gap_sec: float | None = None
) -> Dialog:
    """One episode, its five sessions in order, as one coherent conversation."""
    where = source.describe()
    if not isinstance(record, Mapping):
        raise DialogError(f"expected an object, got {type(record).__name__}", where)
    intervals = record.get("time_interval")
    intervals = list(intervals) if isinstance(intervals, (list, tuple)) else []
    relationship = record.get("relationship")
    sessions = []
    for n, name in enumerate(SESSIONS):
        dialogue = record.get(f"{name}_session_dialogue")
        if dialogue is None:
            continue
        info: dict[str, Any] = {"session": n + 1}
        if n < len(intervals) and intervals[n]:
            info["time_interval"] = intervals[n]
        if relationship:
            info["relationship"] = relationship
        sessions.append(RawSession(_turns(dialogue, record.get(f"{name}_session_speakers")), info))
    if not sessions:
        raise DialogError(
            "no session's utterances (first_session_dialogue, ...)", where, "first_session_dialogue"
        )
    original = record.get("dataID")
    has_id = isinstance(original, str) and bool(original.strip())
    src = Source(**{**source.to_dict(), "original_id": str(original)}) if original is not None else source
    return build_coherent(original if has_id else default_id, sessions, [], src, limits, session_gap_sec)


def _turns(dialogue: Any, speakers: Any) -> list[RawTurn]:
    if not isinstance(dialogue, (list, tuple)):
        return []
    labels = list(speakers) if isinstance(speakers, (list, tuple)) else []
    return [RawTurn(labels[i] if i < len(labels) else None, text) for i, text in enumerate(dialogue)]
