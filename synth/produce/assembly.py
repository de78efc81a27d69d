"""The one shape every producer shares (the TTS pipeline, the recorded-corpus converters): turns
placed on a conversation timeline as they are produced, then assembled into a finished
Conversation with its provenance and, when a sample builder is given, its training samples."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from ..dataset.metadata import turn_records
from ..domain import Conversation, ConversationEvent, Dialog, SynthesizedTurn, Voice
from ..samples.builder import BuildsSamples
from ..version import __version__
from ..words import Words
from .timeline import GapDistribution, Timeline


def place_turn(
    timeline: Timeline,
    turn_id: int,
    speaker: str,
    voice: Voice,
    text: str,
    audio: np.ndarray,
    sample_rate: int,
    began: float,
    extra: dict[str, Any] | None = None,
    source_turn: int = -1,
    gap_sec: float | None = None,
    words: Words | None = None,
    fullband: np.ndarray | None = None,
) -> SynthesizedTurn:
    """A produced turn, started on the timeline; `began` is when its production started;
    `words`: its word timings from the turn's start."""
    start = timeline.place(audio.shape[0] / sample_rate, gap_sec, speaker)
    return SynthesizedTurn(
        turn_id=turn_id,
        speaker=speaker,
        voice=voice,
        text=text,
        audio=audio,
        sample_rate=sample_rate,
        start_time=start,
        synthesis_sec=time.perf_counter() - began,
        extra=extra or {},
        source_turn=source_turn,
        words=words,
        fullband=fullband,
    )


def provenance(
    seed: int, sample_rate: int, gap: GapDistribution, engine: Mapping[str, Any]
) -> dict[str, Any]:
    """What makes a conversation reproducible, in the order metadata.json lists it."""
    return {
        "seed": seed,
        "sample_rate": sample_rate,
        "gap_distribution": gap.spec(),
        "engine": dict(engine),
        "synth_version": __version__,
    }


def assemble(
    dialog: Dialog,
    casting: Mapping[str, Voice],
    turns: list[SynthesizedTurn],
    extra: dict[str, Any],
    sample_builder: BuildsSamples | None = None,
    events: list[ConversationEvent] | None = None,
) -> Conversation:
    """The finished conversation; its samples are built from exact (unrounded) durations. A
    session lists its parts (`segments`, in output turn ids); `events` (backchannels) are heard,
    never trained on as turns."""
    starts: frozenset[int] = frozenset()
    if dialog.segments:
        segments = segment_records(dialog, turns)
        starts = frozenset(s["first_turn"] for s in segments[1:])
        extra = {**extra, "segments": segments, "session_pause_sec": dialog.join_pause_sec}
    if dialog.notes:  # what reading the source left out (a turn, a question), each naming where
        extra = {**extra, "source_notes": list(dialog.notes)}
    conv = Conversation(dialog=dialog, casting=dict(casting), turns=turns, extra=extra, events=events or [])
    if sample_builder is None:
        return conv
    samples, tokens = sample_builder.build(conv.conversation_id, turn_records(conv, digits=None), starts)
    return replace(conv, samples=samples, tokens=tokens)


def segment_records(dialog: Dialog, turns: list[SynthesizedTurn]) -> list[dict[str, Any]]:
    """The parts of a session in the conversation's own turn ids (a long turn split in parts
    keeps them all in its segment)."""
    segments = []
    for seg in dialog.segments:
        ids = [t.turn_id for t in turns if seg.first_turn <= t.source_turn <= seg.last_turn]
        record: dict[str, Any] = {
            **seg.info,  # a coherent source's session: its number, date or time gap as given
            "source": seg.source.to_dict(),
            "first_turn": ids[0],
            "last_turn": ids[-1],
        }
        if seg.dialog_id is not None:  # which dialog, and which of its turns (a part may be cut)
            record["dialog"] = seg.dialog_id
            record["source_turns"] = [seg.source_first, seg.source_first + seg.last_turn - seg.first_turn]
        segments.append(record)
    return segments
