"""A finished Conversation (audio in memory) described as the records written to disk: its
`metadata.json` and, through it, its manifest line (synth.dataset.records)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from ..domain import Conversation, Probe, SpokenProbe, SynthesizedTurn
from .records import (
    ConversationMetadata,
    EventRecord,
    ProbeRecord,
    TurnRecord,
    event_file,
    probe_answer_file,
    probe_files,
    turn_files,
)


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
    """The metadata.json record of a finished conversation (created now)."""
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
        probes=probe_records(conv.probes, conv.turns, conv.samples, len(conv.turns)),
    )


def turn_tokens(samples: Sequence[Mapping[str, Any]] | None) -> dict[int, int]:
    """turn_number -> the tokens its sample adds to total_tokens (text and speech)."""
    return {
        int(s["turn_number"]): int(s["original_length"]) - 1 + int(s.get("speech_tokens", 0))
        for s in samples or []
    }


def probe_records(
    probes: Sequence[SpokenProbe],
    turns: Sequence[SynthesizedTurn],
    samples: Sequence[Mapping[str, Any]] | None,
    first_number: int,
) -> list[ProbeRecord]:
    """The probes as metadata records: evidence turns with their times, distances in seconds and
    in counted tokens (when the conversation has samples), their samples' turn numbers."""
    tokens = turn_tokens(samples)
    by_source: dict[int, list[SynthesizedTurn]] = {}
    for t in turns:
        by_source.setdefault(t.source_turn, []).append(t)
    records = []
    for p in probes:
        evidence: list[dict[str, Any]] = []
        ends: list[float] = []
        for i, source_id in zip(p.probe.evidence, _ids(p.probe)):
            for t in by_source[i]:
                ends.append(round(t.end_time, 3))
                evidence.append(
                    {
                        "turn_id": t.turn_id,
                        **({"source_id": source_id} if source_id else {}),
                        "start": round(t.start_time, 3),
                        "end": round(t.end_time, 3),
                    }
                )
        latest, earliest = max(ends), min(ends)
        wav, txt = probe_files(p.index)
        distance_tokens = None
        if samples is not None:
            distance_tokens = {
                "latest": _tokens_between(turns, tokens, latest, p.time),
                "earliest": _tokens_between(turns, tokens, earliest, p.time),
            }
        records.append(
            ProbeRecord(
                probe_id=p.probe.probe_id,
                question=p.probe.question,
                answer=p.probe.answer,
                audio_file=wav,
                transcript_file=txt,
                duration_sec=round(p.duration_sec, 4),
                time=round(p.time, 3),
                evidence=evidence,
                distance_sec={"latest": _seconds(p.time - latest), "earliest": _seconds(p.time - earliest)},
                turn_number=first_number + p.index,
                asked_by=p.asked_by,
                voice=p.voice.id,
                placement=p.placement,
                distance_tokens=distance_tokens,
                category=p.probe.category,
                adversarial=p.probe.adversarial,
                scoring=p.probe.scoring,
                answer_audio_file=probe_answer_file(p.index) if p.answer_voice is not None else None,
                extra={
                    **({"answer_voice": p.answer_voice.id} if p.answer_voice is not None else {}),
                    **({"source": dict(p.probe.meta)} if p.probe.meta else {}),
                },
            )
        )
    return records


def _seconds(value: float) -> float:
    """A distance rounded to milliseconds, never -0.0."""
    return round(value, 3) + 0.0


def _ids(probe: Probe) -> list[str | None]:
    ids: list[str | None] = list(probe.evidence_ids)
    return ids + [None] * (len(probe.evidence) - len(ids))


def _tokens_between(
    turns: Sequence[SynthesizedTurn], tokens: Mapping[int, int], after: float, until: float
) -> int:
    """The tokens of the turns that start at or after `after` and end by `until`: what the
    context holds between the evidence and the question."""
    return sum(
        tokens.get(t.turn_id, 0) for t in turns if t.start_time >= after - 1e-6 and t.end_time <= until + 1e-6
    )
