"""A finished Conversation (audio in memory) described as the records written to disk: its
`metadata.json` and, through it, its manifest line (synth.records)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from ..domain import Conversation, SynthesizedTurn
from .records import ConversationMetadata, EventRecord, TurnRecord, event_file, turn_files


def turn_records(conv: Conversation, digits: int | None = 4) -> list[TurnRecord]:
    """The turns as written to metadata.json (times rounded to `digits`; None: exact), with
    their samples' target kinds once the samples are built."""
    kinds = [s.get("target") for s in conv.samples] if conv.samples else None
    return records_of(conv.turns, conv.dialog.speakers, digits, kinds)


def records_of(
    turns: Sequence[SynthesizedTurn],
    speakers: Sequence[str],
    digits: int | None = None,
    kinds: Sequence[str | None] | None = None,
) -> list[TurnRecord]:
    """Turn records of synthesized turns (a whole conversation's, or a session part's while it is
    being measured)."""

    def r(x: float) -> float:
        return x if digits is None else round(x, digits)

    records = []
    for i, t in enumerate(turns):
        wav, txt = turn_files(t.turn_id)
        records.append(
            TurnRecord(
                turn_id=t.turn_id,
                speaker=t.speaker,
                speaker_id=list(speakers).index(t.speaker),
                voice=t.voice.id,
                audio_file=wav,
                transcript_file=txt,
                text=t.text,
                num_samples=t.num_samples,
                duration_sec=r(t.duration_sec),
                start_time=r(t.start_time),
                end_time=r(t.end_time),
                words=None
                if t.words is None
                else [w.to_dict(t.start_time, 3 if digits else 6) for w in t.words],
                target=kinds[i] if kinds else None,
                source_turn=t.source_turn if t.source_turn >= 0 else None,
                extra=dict(t.extra),
            )
        )
    return records


def conversation_metadata(conv: Conversation) -> ConversationMetadata:
    speakers = conv.dialog.speakers
    turns = turn_records(conv)
    return ConversationMetadata(
        conversation_id=conv.conversation_id,
        total_turns=len(conv.turns),
        total_duration_sec=round(conv.total_duration_sec, 4),
        speech_duration_sec=round(conv.speech_duration_sec, 4),
        speakers=speakers,
        voices={s: v.to_dict() for s, v in conv.casting.items()},
        turns=turns,
        source=conv.dialog.source.to_dict(),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        extra=dict(conv.extra),
        tokens=conv.tokens,
        events=[
            EventRecord(
                kind=e.kind,
                speaker=e.speaker,
                voice=e.voice.id,
                text=e.text,
                start=round(e.start, 3),
                end=round(e.end, 3),
                audio_file=event_file(i),
            )
            for i, e in enumerate(conv.events)
        ],
    )
