"""What every per-turn export walks: each training sample of a dataset with its turn, the kind of
its target and the text it targets; each memory probe with its sample (target kind `answer`,
docs/memory.md); and the one rule for a file a record names (a plain name inside its own
conversation folder), so no export ever points outside the dataset.

A probe is training data only where the dataset was made so (`--probes in-training`: its sample
also follows the turns' in samples.jsonl); otherwise it is evaluation data, and an export that
could carry it leaves it out unless asked (PROBE_CHOICES), so a probe never leaks into training
by default."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..dataset.reader import ConversationRef
from ..dataset.records import (
    PROBES_FILE,
    SAMPLES_FILE,
    ConversationMetadata,
    ProbeRecord,
    TurnRecord,
)
from ..errors import ConfigError, DatasetError

TARGET_KINDS = ("reply", "transcript")
ANSWER = "answer"  # a memory probe's target kind: its answer
PROBE_CHOICES = ("auto", "include", "exclude")
PROBES_HELP = (
    "memory probes (docs/memory.md) as items after each conversation's turns, target kind answer: "
    "auto (where the dataset made them training samples, --probes in-training of generate), include "
    "(also evaluation probes, --probes separate) or exclude"
)


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


@dataclass(frozen=True)
class ProbeRow:
    """One memory probe: its spoken question in, its answer out (target kind `answer`), numbered
    after its conversation's turns. `sample`: its line of probes.jsonl (or of samples.jsonl's
    tail), None where the dataset has no probe samples."""

    ref: ConversationRef
    probe: ProbeRecord
    index: int  # its place in metadata `probes` (probe_<index>.wav)
    sample: dict[str, Any] | None
    speaker_id: int  # the asker's (an examiner, who is none of the speakers, gets the next id)

    kind = ANSWER

    @property
    def target(self) -> str:
        return self.probe.answer

    @property
    def turn_number(self) -> int:
        return self.probe.turn_number

    @property
    def audio(self) -> Path:
        return member(self.ref, self.probe.audio_file, f"probes[{self.index}].audio_file")

    @property
    def answer_audio(self) -> Path | None:
        name = self.probe.answer_audio_file
        return None if name is None else member(self.ref, name, f"probes[{self.index}].answer_audio_file")


def _is_answer(sample: Any, probe: ProbeRecord) -> bool:
    return (
        isinstance(sample, dict)
        and sample.get("target") == ANSWER
        and sample.get("probe_id") == probe.probe_id
    )


def _turn_samples(
    ref: ConversationRef, meta: ConversationMetadata, samples: list[dict[str, Any]], turns: int
) -> list[dict[str, Any]]:
    """The turns' samples of samples.jsonl; what follows them must be the probes' (in-training)."""
    path = ref.folder / SAMPLES_FILE
    extra = samples[turns:]
    if len(samples) < turns or (
        extra and (len(extra) != len(meta.probes) or not all(map(_is_answer, extra, meta.probes)))
    ):
        raise DatasetError(
            f"{path}: {len(samples)} samples for {turns} turns"
            + (f" and {len(meta.probes)} probes" if meta.probes else "")
            + " (run `synth tokenize`)"
        )
    return samples[:turns]


def _probe_samples(
    ref: ConversationRef, meta: ConversationMetadata, in_samples: list[dict[str, Any]]
) -> list[dict[str, Any] | None]:
    """One sample per probe: probes.jsonl's, else samples.jsonl's tail, else none."""
    found = ref.probe_samples()
    if found is None:
        return list(in_samples) if in_samples else [None] * len(meta.probes)
    path = ref.folder / PROBES_FILE
    if len(found) != len(meta.probes):
        raise DatasetError(
            f"{path}: {len(found)} samples for {len(meta.probes)} probes in {ref.metadata_path}"
        )
    for line, (sample, probe) in enumerate(zip(found, meta.probes), start=1):
        if not _is_answer(sample, probe):
            raise DatasetError(f"{path} line {line}: not the `answer` sample of probe {probe.probe_id!r}")
    return list(found)


def _probe_speaker_id(meta: ConversationMetadata, probe: ProbeRecord) -> int:
    """The sample builder's rule: the asker's place in `speakers`, an examiner the next one."""
    speakers = meta.speakers
    return speakers.index(probe.asked_by) if probe.asked_by in speakers else len(speakers)


def include_probes(choice: str, in_training: bool) -> bool:
    """Whether an export with PROBE_CHOICES `choice` carries a conversation's probes."""
    if choice not in PROBE_CHOICES:
        raise ConfigError("probes", f"choose {', '.join(PROBE_CHOICES)}", choice)
    return choice == "include" or (choice == "auto" and in_training)


def conversation_rows(
    refs: list[ConversationRef], probes: str = "exclude", left_out: list[str] | None = None
) -> Iterator[Row | ProbeRow]:
    """Every conversation's turns' samples in order, each followed by its probes where `probes`
    (PROBE_CHOICES) says so: `auto` carries them where they are in samples.jsonl. The ids of the
    probes not carried are added to `left_out`."""
    include_probes(probes, False)  # the choice is checked before anything is read
    for ref in refs:
        try:
            meta = ref.metadata()
            turns = ref.turns(meta)
            samples = ref.samples()
        except DatasetError:
            if ref.taken_out():  # by a repair running beside this export: no longer in the dataset
                continue
            raise
        yield from _turns(ref, meta, turns, _turn_samples(ref, meta, samples, len(turns)))
        in_samples = samples[len(turns) :]
        if meta.probes and include_probes(probes, bool(in_samples)):
            for k, (probe, sample) in enumerate(zip(meta.probes, _probe_samples(ref, meta, in_samples))):
                speaker_id = int(sample["speaker_id"]) if sample else _probe_speaker_id(meta, probe)
                yield ProbeRow(ref, probe, k, sample, speaker_id)
        elif left_out is not None:
            left_out += [p.probe_id for p in meta.probes]


def probes_note(count: int, flag: str) -> str:
    """What an export that left evaluation probes out says."""
    return (
        f"left out {count} memory probe(s): evaluation data (made with --probes separate); carry them "
        f"with {flag} include, or export them for an evaluation with --to memory"
    )


def turn_rows(refs: list[ConversationRef]) -> Iterator[Row]:
    """Every turn's sample of every conversation, in order (never a probe)."""
    for row in conversation_rows(refs, "exclude"):
        assert isinstance(row, Row)
        yield row


def _turns(
    ref: ConversationRef, meta: ConversationMetadata, turns: list[TurnRecord], samples: list[dict[str, Any]]
) -> Iterator[Row]:
    starts = _part_starts(meta)
    path = ref.folder / SAMPLES_FILE
    for line, (sample, turn) in enumerate(zip(samples, turns), start=1):
        i = int(sample["turn_number"])
        kind = sample.get("target") or "transcript"
        if kind not in TARGET_KINDS:
            raise DatasetError(f"{path} line {line}: target {kind!r} is not reply or transcript")
        if kind == "reply" and i + 1 >= len(turns):
            raise DatasetError(f"{path} line {line}: a reply target on the conversation's last turn")
        target = _reply(turns, i, starts) if kind == "reply" else str(turns[i].text)
        yield Row(ref, turn, sample, kind, target)


def quality_field(turn: TurnRecord) -> dict[str, Any]:
    """{"quality": the turn's stored scores} where it was scored (metadata `quality`), else {}:
    what the Lhotse exports add to a supervision's `custom`."""
    block = turn.extra.get("quality")
    return {"quality": dict(block)} if isinstance(block, dict) else {}
