"""Multi-Session Chat (MSC, Xu et al. 2022): two people who meet again and again, in up to five
sessions. One conversation, all its sessions, one Dialog (synth.dialogs.sources.coherent). MSC
asks no questions: no probes.

Two layouts are read:

- ParlAI's release (`msc_dialogue/session_N/{train,valid,test}.txt`, JSON Lines): an episode a
  line, `{"dialog": [{"id": "Speaker 1", "text"}, ...], "previous_dialogs": [{"dialog": [...],
  "time_num": 7, "time_unit": "days", "time_back"?}, ...], "personas", "metadata":
  {"initial_data_id"}}`. A line of session N holds sessions 1..N-1 in `previous_dialogs` and
  session N in `dialog`, so each line is a whole coherent conversation (the lines of the last
  session's file are the longest ones). An earlier session's `time_num` and `time_unit` are the
  time that passed after it, before the next one (ParlAI's teacher shows
  `previous_dialogs[-1]` as the time since the last session): they become the next session's
  `time_since_previous` ("7 days", the two joined as ParlAI joins them), and a session's own
  `time_back` is kept as given. A turn without an `id` (earlier sessions often have none) is
  spoken by "Speaker 1" and "Speaker 2" in turn, the first turn by Speaker 1, as ParlAI counts.
- The Hugging Face mirror `nayohan/multi_session_chat` (parquet): a row per session,
  `{"dialoug_id" (sic), "session_id" (from 0), "dialogue": [...], "speaker": [...], "persona1",
  "persona2"}`. The rows of one `dialoug_id` (adjacent or not: the split is read whole) are its
  sessions, ordered by `session_id`, kept as given in the info beside the session's number. The
  mirror says nothing of the time between sessions.

Speaker labels are kept as the file gives them ("Speaker 1", "Speaker 2"). Personas are not
kept: they summarize what the sessions say."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from itertools import zip_longest
from pathlib import Path
from typing import Any

from ...domain import Dialog, Source
from ...errors import DialogError
from ...ids import derived_id
from ..build import DialogLimits
from .coherent import RawSession, RawTurn, build_coherent
from .json_items import json_records

DATASET = "msc"
SPEAKERS = ("Speaker 1", "Speaker 2")


def looks_like_msc(record: Any) -> bool:
    """A ParlAI MSC episode: its `dialog` with the earlier sessions or the personas."""
    return (
        isinstance(record, Mapping)
        and isinstance(record.get("dialog"), list)
        and ("previous_dialogs" in record or "personas" in record)
    )


def looks_like_msc_row(record: Any) -> bool:
    """A session row of the Hugging Face mirror (nayohan/multi_session_chat)."""
    return isinstance(record, Mapping) and "dialoug_id" in record and "dialogue" in record


def read_msc(
    path: Path, limits: DialogLimits, session_gap_sec: float | None = None
) -> Iterator[Dialog | DialogError]:
    """Each line of a ParlAI MSC session file as one coherent conversation (or the session rows of
    a mirror exported to JSON Lines, grouped); a line that cannot be read is a DialogError naming
    it."""
    folder = path.parent.name if path.parent.name.startswith("session_") else ""
    prefix = f"{folder} {path.stem}".strip()

    def items() -> Iterator[tuple[Source, str, Any]]:
        for index, line, record in json_records(path):
            source = Source(dataset=DATASET, index=index, path=str(path), line=line)
            yield source, derived_id(prefix, line if line is not None else index), record

    return _dialogs(items(), None, limits, session_gap_sec)


def msc_rows(
    rows: Iterable[Any], split: str | None, limits: DialogLimits, session_gap_sec: float | None = None
) -> Iterator[Dialog | DialogError]:
    """MSC from the rows of a Hugging Face dataset or parquet file: the mirror's session rows
    grouped into conversations, or ParlAI episodes a row each."""
    items = (
        (Source(dataset=DATASET, split=split, index=i), derived_id(DATASET, i, split), row)
        for i, row in enumerate(rows)
    )
    return _dialogs(items, split, limits, session_gap_sec)


def _dialogs(
    items: Iterable[tuple[Source, str, Any]], split: str | None, limits: DialogLimits, gap: float | None
) -> Iterator[Dialog | DialogError]:
    """ParlAI episodes as they come; mirror rows gathered by conversation, yielded at the end."""
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    first: dict[Any, Source] = {}
    for source, default_id, record in items:
        if isinstance(record, DialogError):
            yield record
        elif looks_like_msc_row(record):
            key = record["dialoug_id"]
            try:
                groups.setdefault(key, []).append(record)
            except TypeError:
                yield DialogError("must be a number or a string", source.describe(), "dialoug_id")
                continue
            first.setdefault(key, source)
        else:
            try:
                yield msc_dialog(record, source, default_id, limits, gap)
            except DialogError as exc:
                yield exc
    for position, (key, rows) in enumerate(groups.items()):
        number = key if isinstance(key, int) and not isinstance(key, bool) and key >= 0 else position
        source = Source(
            **{**first[key].to_dict(), "index": number, "original_id": str(key)},
        )
        cid = derived_id(DATASET, number, split) if isinstance(key, int) else str(key)
        try:
            yield _grouped_dialog(rows, source, cid, limits, gap)
        except DialogError as exc:
            yield exc


def msc_dialog(
    record: Any, source: Source, default_id: str, limits: DialogLimits, session_gap_sec: float | None = None
) -> Dialog:
    """One ParlAI MSC episode (its earlier sessions and its own) as one coherent conversation."""
    where = source.describe()
    if not isinstance(record, Mapping):
        raise DialogError(f"expected an object, got {type(record).__name__}", where)
    if not isinstance(record.get("dialog"), list):
        raise DialogError(
            "not an MSC episode: expected a 'dialog' list with its 'previous_dialogs' (ParlAI), or "
            "session rows with 'dialoug_id' and 'dialogue' (nayohan/multi_session_chat)",
            where,
        )
    previous = record.get("previous_dialogs") or []
    if not isinstance(previous, list):
        raise DialogError("not a list of sessions", where, "previous_dialogs")
    parts = [p if isinstance(p, Mapping) else {} for p in previous] + [{"dialog": record["dialog"]}]
    sessions = []
    since_previous = None
    for n, part in enumerate(parts, start=1):
        info: dict[str, Any] = {"session": n}
        if since_previous:
            info["time_since_previous"] = since_previous
        if part.get("time_back"):
            info["time_back"] = part["time_back"]
        sessions.append(RawSession(_parlai_turns(part.get("dialog")), info))
        since_previous = _time_gap(part)
    meta = record.get("metadata")
    original = meta.get("initial_data_id") if isinstance(meta, Mapping) else None
    src = Source(**{**source.to_dict(), "original_id": str(original)}) if original is not None else source
    return build_coherent(default_id, sessions, [], src, limits, session_gap_sec)


def _time_gap(part: Mapping[str, Any]) -> str | None:
    num, unit = part.get("time_num"), part.get("time_unit")
    return f"{num} {unit}" if num is not None and unit else None


def _parlai_turns(dialog: Any) -> list[RawTurn]:
    if not isinstance(dialog, list):
        return []
    turns = []
    for i, turn in enumerate(dialog):
        speaker: Any = SPEAKERS[i % 2]
        text = turn
        if isinstance(turn, Mapping):
            text = turn.get("text")
            if isinstance(turn.get("id"), str) and turn["id"].strip():
                speaker = turn["id"]
        turns.append(RawTurn(speaker, text))
    return turns


def _grouped_dialog(
    rows: list[Mapping[str, Any]], source: Source, cid: str, limits: DialogLimits, gap: float | None
) -> Dialog:
    """The mirror's session rows of one conversation, in `session_id` order."""

    def order(row: Mapping[str, Any]) -> tuple[int, int]:
        sid = row.get("session_id")
        return (0, sid) if isinstance(sid, int) and not isinstance(sid, bool) else (1, 0)

    sessions = []
    for n, row in enumerate(sorted(rows, key=order), start=1):
        dialogue = row.get("dialogue")
        speakers = row.get("speaker")
        utterances = list(dialogue) if isinstance(dialogue, (list, tuple)) else []
        labels = list(speakers) if isinstance(speakers, (list, tuple)) else []
        turns = [RawTurn(s, u) for u, s in zip_longest(utterances, labels[: len(utterances)])]
        info: dict[str, Any] = {"session": n}
        if row.get("session_id") is not None:
            info["session_id"] = row["session_id"]
        sessions.append(RawSession(turns, info))
    return build_coherent(cid, sessions, [], source, limits, gap)
