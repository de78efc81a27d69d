"""What every per-turn export walks: each training sample of a dataset with its turn, the kind of
its target and the text it targets; and the one rule for a file a record names (a plain name
inside its own conversation folder), so no export ever points outside the dataset."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..dataset.reader import ConversationRef, DatasetError
from ..dataset.records import SAMPLES_FILE, ConversationMetadata, TurnRecord

TARGET_KINDS = ("reply", "transcript")


@dataclass(frozen=True)
class Row:
    """One sample: `kind` is "reply" (the target is the next speaker's words) or "transcript"
    (the turn's own words); `target` is that text."""

    ref: ConversationRef
    turn: TurnRecord
    sample: dict[str, Any]
    kind: str
    target: str

    @property
    def audio(self) -> Path:
        return member(self.ref, self.turn.audio_file, f"turns[{self.turn.turn_id}].audio_file")


def member(ref: ConversationRef, name: str, field: str) -> Path:
    """`name` inside the conversation's folder, by the reader's one rule for paths."""
    return ref.file(name, field)


def _reply(turns: list[TurnRecord], i: int, part_starts: frozenset[int]) -> str:
    """The reply to turn i: the next turn's words, all of its pieces when it was split (the
    turns after it that share its `source_turn`, within its session part), as the sample
    builder targets it."""
    first = turns[i + 1]
    pieces = [first]
    for j in range(i + 2, len(turns)):
        t = turns[j]
        if first.source_turn is None or t.source_turn != first.source_turn or j in part_starts:
            break
        pieces.append(t)
    return " ".join(str(t.text) for t in pieces)


def _part_starts(meta: ConversationMetadata) -> frozenset[int]:
    """Where a session's parts begin, after the first (metadata `segments`)."""
    segments = meta.extra.get("segments") or []
    return frozenset(int(s["first_turn"]) for s in segments[1:] if isinstance(s, dict) and "first_turn" in s)


def turn_rows(refs: list[ConversationRef]) -> Iterator[Row]:
    """Every sample of every conversation, in order."""
    for ref in refs:
        meta = ref.metadata()
        turns = ref.turns(meta)
        starts = _part_starts(meta)
        samples = ref.samples()
        path = ref.folder / SAMPLES_FILE
        if len(samples) != len(turns):
            raise DatasetError(
                f"{path}: {len(samples)} samples for {len(turns)} turns (run `synth tokenize`)"
            )
        for line, (sample, turn) in enumerate(zip(samples, turns), start=1):
            i = int(sample["turn_number"])
            kind = sample.get("target") or "transcript"
            if kind not in TARGET_KINDS:
                raise DatasetError(f"{path} line {line}: target {kind!r} is not reply or transcript")
            if kind == "reply" and i + 1 >= len(turns):
                raise DatasetError(f"{path} line {line}: a reply target on the conversation's last turn")
            target = _reply(turns, i, starts) if kind == "reply" else str(turns[i].text)
            yield Row(ref, turn, sample, kind, target)
