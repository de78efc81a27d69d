"""Turns and events: each typed, by a listed speaker, its audio and transcript as metadata says,
its word timings inside it; the turns numbered in order and placed on one consistent timeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...dataset.records import METADATA_FILE, EventRecord, TurnRecord, field_errors
from ...samples.builder import WHISPER_WINDOW_SEC
from ...words import word_errors
from .audio import check_edges
from .problems import Place, Problem
from .transcripts import check_transcript

if TYPE_CHECKING:
    from .conversation import Conversation

DURATION_TOLERANCE_SEC = 0.01


def check_turns(conv: Conversation) -> list[Problem]:
    """Every turn (`_turn`), in start order, no speaker starting before their previous turn ends,
    and total_duration_sec the end of the latest-ending turn."""
    meta, tol = conv.meta, DURATION_TOLERANCE_SEC
    problems: list[Problem] = []
    previous_start = latest_end = 0.0
    speaker_end: dict[str, float] = {}
    for i, turn in enumerate(meta["turns"]):
        at = conv.place(METADATA_FILE, f"turns[{i}]", turn=i)
        typed = at.typed(turn, TurnRecord)
        if typed:
            problems += typed
            continue
        problems += _turn(conv, i, turn, at)
        start = turn["start_time"]
        if start < previous_start - tol:
            problems.append(
                at.error(f"starts at {start} before the turn before it (start order)", "start_time")
            )
        if start < speaker_end.get(turn["speaker"], 0.0) - tol:
            problems.append(at.error("starts before the same speaker's previous turn ends", "start_time"))
        previous_start = start
        speaker_end[turn["speaker"]] = turn["end_time"]
        latest_end = max(latest_end, turn["end_time"])
    if meta["turns"] and abs(meta["total_duration_sec"] - latest_end) > tol:
        problems.append(
            conv.place(METADATA_FILE).error(
                f"total_duration_sec {meta['total_duration_sec']} is not the end of the latest-ending turn "
                f"({latest_end})",
                "total_duration_sec",
            )
        )
    return problems


def turn_seconds(conv: Conversation) -> list[float | None]:
    """The length of each typed turn's WAV (None where it cannot be read): what the report adds up."""
    return [
        conv.wav(turn["audio_file"]).seconds
        for turn in conv.meta["turns"]
        if not field_errors(turn, TurnRecord, "")
    ]


def _turn(conv: Conversation, i: int, turn: dict[str, Any], at: Place) -> list[Problem]:
    """One typed turn: its id, speaker, files (`_turn_files`) and times."""
    meta, tol = conv.meta, DURATION_TOLERANCE_SEC
    problems = []
    if turn["turn_id"] != i:
        problems.append(at.error(f"turn_id {turn['turn_id']}, expected {i} (ids must be 0..n-1)", "turn_id"))
    if turn["speaker"] not in set(meta["speakers"]):
        problems.append(at.error(f"speaker {turn['speaker']!r} not in speakers", "speaker"))
    problems += _turn_files(conv, i, turn, at)
    tokens: dict[str, Any] = meta["tokens"] if isinstance(meta.get("tokens"), dict) else {}
    window = WHISPER_WINDOW_SEC if tokens.get("speech_profile") == "llama-omni" else None
    if window is not None and turn["duration_sec"] > window + tol:
        problems.append(
            at.error(
                f"lasts {turn['duration_sec']:.2f} s, longer than the {window:g} s Whisper window of "
                "the llama-omni speech profile (the model would lose its end)",
                "duration_sec",
            )
        )
    if abs(turn["end_time"] - turn["start_time"] - turn["duration_sec"]) > tol:
        problems.append(at.error("end_time - start_time != duration_sec", "end_time"))
    return problems


def _turn_files(conv: Conversation, i: int, turn: dict[str, Any], at: Place) -> list[Problem]:
    """A turn's WAV and transcript: readable and as metadata says (its text, its duration), a
    synthesized turn's edges of silence, its word timings inside it."""
    audio, transcript = turn["audio_file"], turn["transcript_file"]
    wav = conv.wav(audio)
    problems = list(wav.problems)
    text, found = check_transcript(conv.folder / transcript, conv.place(transcript, turn=i))
    problems += found
    if text is not None and isinstance(turn.get("text"), str) and text != turn["text"]:
        problems.append(
            conv.place(transcript, turn=i).error(
                f"says {text[:60]!r} but metadata turns[{i}].text is {turn['text'][:60]!r} (the transcript "
                "must be exactly what was said)",
                "text",
            )
        )
    synthesized = (conv.meta.get("engine") or {}).get("engine") not in (None, "recorded")
    if wav.seconds is not None and synthesized:
        problems += check_edges(conv.folder / audio, conv.place(audio, turn=i))
    said = turn.get("text", text)
    if "words" in turn and isinstance(said, str):
        for problem in word_errors(said, turn["words"], turn["start_time"], turn["end_time"]):
            problems.append(at.error(problem, "words"))
    if wav.seconds is not None and abs(wav.seconds - turn["duration_sec"]) > DURATION_TOLERANCE_SEC:
        problems.append(
            at.error(
                f"duration_sec {turn['duration_sec']} but the WAV lasts {wav.seconds:.4f} s", "duration_sec"
            )
        )
    return problems


def check_events(conv: Conversation) -> list[Problem]:
    """Events (backchannels): typed, by a known speaker, their audio lasting their span."""
    events = conv.meta.get("events", [])
    if not isinstance(events, list):
        return [conv.place(METADATA_FILE).error("'events' is not a list", "events")]
    problems = []
    for i, event in enumerate(events):
        at = conv.place(METADATA_FILE, f"events[{i}]")
        typed = at.typed(event, EventRecord)
        if typed:
            problems += typed
            continue
        if event["speaker"] not in conv.meta["speakers"]:
            problems.append(at.error(f"speaker {event['speaker']!r} not in speakers", "speaker"))
        if not 0 <= event["start"] <= event["end"]:
            problems.append(
                at.error(f"start {event['start']} and end {event['end']} are not ordered", "start")
            )
        name = event.get("audio_file")
        if isinstance(name, str):
            wav = conv.wav(name)
            problems += wav.problems
            span = event["end"] - event["start"]
            if wav.seconds is not None and abs(wav.seconds - span) > DURATION_TOLERANCE_SEC:
                problems.append(at.error(f"lasts {span:.3f} s but its WAV {wav.seconds:.3f} s", "audio_file"))
    return problems
