"""The records of the dataset contract on disk (docs/dataset-format.md), as plain dataclasses
with one `to_dict` / `from_dict` each: a turn of `metadata.json`, the whole `metadata.json`, and a
line of `manifest.jsonl`. The writer, `synth validate`, the dataset reader, `synth tokenize`,
the splits and the exports all go through them, and the file names are defined here once.

Fields a record does not know are kept in `extra` (in their order), so reading and writing back
a file from a newer or older version loses nothing."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import RecordError

METADATA_VERSION = 1
MANIFEST = "manifest.jsonl"
CONVERSATION_AUDIO = "conversation.wav"
METADATA_FILE = "metadata.json"
SAMPLES_FILE = "samples.jsonl"
PROBES_FILE = "probes.jsonl"  # the probes' samples, apart from the training samples (docs/memory.md)
CONVERSATIONS_DIR = "conversations"
TOKEN_COUNTS = ("text_tokens", "speech_tokens", "total_tokens")


def turn_files(turn_id: int) -> tuple[str, str]:
    """The audio and transcript file names of a turn inside its conversation folder."""
    return f"turn_{turn_id}.wav", f"turn_{turn_id}.txt"


def probe_files(index: int) -> tuple[str, str]:
    """The audio and transcript file names of a conversation's memory probe (its question)."""
    return f"probe_{index}.wav", f"probe_{index}.txt"


def probe_answer_file(index: int) -> str:
    """The audio of a probe's answer, spoken by the main speaker (full-duplex exports)."""
    return f"probe_{index}_answer.wav"


def event_file(index: int) -> str:
    """The audio file of a conversation's event (a backchannel) inside its folder."""
    return f"event_{index}.wav"


def conversation_path(conversation_id: str) -> str:
    """A conversation's folder relative to the dataset root, as the manifest's `path` gives it."""
    return f"{CONVERSATIONS_DIR}/{conversation_id}"


_NUMBER = (int, float)
_TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "str": str,
    "float": _NUMBER,
    "list": list,
    "dict": dict,
}


def _required(cls: type) -> dict[str, type | tuple[type, ...]]:
    """The contract's required fields of a record (those without a default) and their types."""
    return {
        f.name: _TYPES[str(f.type).split("[")[0]]
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }


def is_plain_file_name(value: Any) -> bool:
    """A file name that stays inside the folder it is read from: no separator, not '.' or '..',
    not hidden, no NUL, at most 255 bytes."""
    return (
        isinstance(value, str)
        and 0 < len(value.encode("utf-8", "surrogatepass")) <= 255
        and "/" not in value
        and "\\" not in value
        and "\0" not in value
        and not value.startswith(".")
    )


def field_errors(obj: Any, cls: type, where: str) -> list[str]:
    """Every missing or mistyped required field of `cls` in `obj`, and every file field that is
    not a plain file name inside its own conversation folder, one message each."""
    if not isinstance(obj, dict):
        return [f"{where}: not a JSON object"]
    errors = []
    for name, kind in cls.REQUIRED.items():  # type: ignore[attr-defined]
        if name not in obj:
            errors.append(f"{where}: missing field {name!r}")
        elif isinstance(obj[name], bool) or not isinstance(obj[name], kind):
            errors.append(f"{where}: field {name!r} has type {type(obj[name]).__name__}")
    for name in getattr(cls, "FILE_FIELDS", ()):
        value = obj.get(name)
        if value is not None and not is_plain_file_name(value):
            errors.append(
                f"{where}: field {name!r} is {str(value)[:80]!r}: a file a record names must be a plain "
                "file name inside its own conversation folder"
            )
    return errors


def _check(obj: Any, cls: type, where: str) -> None:
    errors = field_errors(obj, cls, where)
    if errors:
        raise RecordError(errors[0])


def _set(record: Any, *names: str) -> dict[str, Any]:
    """The named fields of a record that are set (not None), in that order: the optional fields a
    record writes only when it has them."""
    return {n: getattr(record, n) for n in names if getattr(record, n) is not None}


def _plain(cls: type, obj: Any, where: str) -> Any:
    """A record whose fields are read as they stand, the rest kept in `extra`."""
    _check(obj, cls, where)
    known, rest = _split(obj, cls)
    return cls(**known, extra=rest)


def _split(
    obj: dict[str, Any], cls: type, skip: tuple[str, ...] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(known fields, the rest in order) of a dict read from disk."""
    names = {f.name for f in dataclasses.fields(cls)} - {"extra"} - set(skip)
    known = {k: v for k, v in obj.items() if k in names}
    rest = {k: v for k, v in obj.items() if k not in names and k not in skip}
    return known, rest


@dataclass
class TurnRecord:
    """One turn of `metadata.json`. `text`, `speaker_id`, `voice` and `num_samples` are always
    written by synth; datasets made elsewhere may lack them (then the transcript file has the
    text and the speaker's position in `speakers` is its id)."""

    turn_id: int
    speaker: str
    audio_file: str
    transcript_file: str
    duration_sec: float
    start_time: float
    end_time: float
    speaker_id: int | None = None
    voice: str | None = None
    text: str | None = None
    num_samples: int | None = None
    words: list[dict[str, Any]] | None = None  # [{"word", "start", "end"}] on the timeline
    target: str | None = None  # the kind of the turn's sample target: "reply" or "transcript"
    source_turn: int | None = None  # the input turn it speaks (the pieces of a split turn share it)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. asr_check, source_file

    REQUIRED: ClassVar[dict[str, type | tuple[type, ...]]]
    FILE_FIELDS: ClassVar[tuple[str, ...]] = ("audio_file", "transcript_file")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"turn_id": self.turn_id, "speaker": self.speaker}
        out.update(_set(self, "speaker_id", "voice"))
        out.update(audio_file=self.audio_file, transcript_file=self.transcript_file)
        out.update(_set(self, "text", "num_samples"))
        out.update(duration_sec=self.duration_sec, start_time=self.start_time, end_time=self.end_time)
        out.update(_set(self, "words", "target", "source_turn"))
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, obj: Any, where: str = "turn") -> TurnRecord:
        return _plain(cls, obj, where)


@dataclass
class EventRecord:
    """One entry of `events` in `metadata.json`: heard in the conversation audio, never a turn."""

    kind: str
    speaker: str
    text: str
    start: float
    end: float
    voice: str | None = None
    audio_file: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    REQUIRED: ClassVar[dict[str, type | tuple[type, ...]]]
    FILE_FIELDS: ClassVar[tuple[str, ...]] = ("audio_file",)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "speaker": self.speaker}
        out.update(_set(self, "voice"))
        out.update(text=self.text, start=self.start, end=self.end)
        out.update(_set(self, "audio_file"))
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, obj: Any, where: str = "event") -> EventRecord:
        return _plain(cls, obj, where)


@dataclass
class ProbeRecord:
    """One entry of `probes` in `metadata.json`: a memory probe (docs/memory.md). The question is
    spoken (`audio_file`, `transcript_file`); `answer` is its text target. `time` is where on the
    conversation timeline it is asked (the state an evaluator answers it from); `evidence` lists
    the turns that hold the answer (`turn_id`, `source_id`, `start`, `end`), all before `time`;
    `distance_sec` and `distance_tokens` are measured from the `latest` and the `earliest`
    evidence turn's end to `time` (tokens counted as total_tokens counts them). `turn_number`: its
    sample's number, after the conversation's turns."""

    probe_id: str
    question: str
    answer: str
    audio_file: str
    transcript_file: str
    duration_sec: float
    time: float
    evidence: list[dict[str, Any]]
    distance_sec: dict[str, Any]
    turn_number: int
    asked_by: str | None = None
    voice: str | None = None
    placement: str | None = None
    distance_tokens: dict[str, Any] | None = None
    category: str | None = None
    adversarial: bool = False
    scoring: str | None = None
    answer_audio_file: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    REQUIRED: ClassVar[dict[str, type | tuple[type, ...]]]
    FILE_FIELDS: ClassVar[tuple[str, ...]] = ("audio_file", "transcript_file", "answer_audio_file")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"probe_id": self.probe_id, "question": self.question, "answer": self.answer}
        out.update(_set(self, "asked_by", "voice"))
        out.update(audio_file=self.audio_file, transcript_file=self.transcript_file)
        out.update(_set(self, "answer_audio_file"))
        out.update(duration_sec=self.duration_sec, time=self.time, turn_number=self.turn_number)
        out.update(_set(self, "placement"))
        out.update(evidence=self.evidence, distance_sec=self.distance_sec)
        out.update(_set(self, "distance_tokens", "category"))
        out["adversarial"] = self.adversarial
        out.update(_set(self, "scoring"))
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, obj: Any, where: str = "probe") -> ProbeRecord:
        return _plain(cls, obj, where)


@dataclass
class ConversationMetadata:
    """`metadata.json`: the conversation, its speakers and voices, its turns on one timeline,
    what makes it reproducible (in `extra`: seed, engine, sample rate, gaps...) and its token
    counts (`tokens`: the counts plus the tokenizer settings that produced them)."""

    conversation_id: str
    total_turns: int
    total_duration_sec: float
    speakers: list[str]
    turns: list[TurnRecord]
    speech_duration_sec: float | None = None
    voices: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    metadata_version: int = METADATA_VERSION
    created_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, Any] | None = None
    events: list[EventRecord] = field(default_factory=list)
    conversation_audio: str | None = None  # conversation.wav: two channels, see `channels`
    conversation_audio_rate: int | None = None  # its sample rate (absent: 16000, before full band)
    channels: list[list[str]] | None = None  # the speakers on each channel
    main_speaker: str | None = None  # the side on channel 0
    probes: list[ProbeRecord] = field(default_factory=list)  # memory probes (docs/memory.md)

    REQUIRED: ClassVar[dict[str, type | tuple[type, ...]]]
    FILE_FIELDS: ClassVar[tuple[str, ...]] = ("conversation_audio",)

    @property
    def total_tokens(self) -> int | None:
        return (self.tokens or {}).get("total_tokens")

    def speaker_id(self, turn: TurnRecord) -> int:
        return turn.speaker_id if turn.speaker_id is not None else self.speakers.index(turn.speaker)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "conversation_id": self.conversation_id,
            "total_turns": self.total_turns,
            "total_duration_sec": self.total_duration_sec,
        }
        out.update(_set(self, "speech_duration_sec"))
        out.update(
            speakers=list(self.speakers),
            voices=self.voices,
            turns=[t.to_dict() for t in self.turns],
            source=self.source,
            metadata_version=self.metadata_version,
        )
        out.update(_set(self, "created_at"))
        if self.events:
            out["events"] = [e.to_dict() for e in self.events]
        out.update(_set(self, "conversation_audio", "conversation_audio_rate", "channels", "main_speaker"))
        if self.probes:
            out["probes"] = [p.to_dict() for p in self.probes]
        out.update(self.extra)
        if self.tokens:
            out["tokens"] = self.tokens
            out.update({k: self.tokens[k] for k in TOKEN_COUNTS if k in self.tokens})
        return out

    @classmethod
    def from_dict(cls, obj: Any, where: str = METADATA_FILE) -> ConversationMetadata:
        _check(obj, cls, where)
        known, rest = _split(obj, cls, skip=TOKEN_COUNTS)
        tokens = known.pop("tokens", None)
        counts = {k: obj[k] for k in TOKEN_COUNTS if k in obj}
        if counts or tokens:
            tokens = {**counts, **(tokens or {})}
        turns = [TurnRecord.from_dict(t, f"{where} turns[{i}]") for i, t in enumerate(known.pop("turns"))]
        events = known.pop("events", None)
        if not isinstance(events, (list, type(None))):
            raise RecordError(f"{where}: field 'events' has type {type(events).__name__}")
        events = [EventRecord.from_dict(e, f"{where} events[{i}]") for i, e in enumerate(events or [])]
        probes = known.pop("probes", None)
        if not isinstance(probes, (list, type(None))):
            raise RecordError(f"{where}: field 'probes' has type {type(probes).__name__}")
        probes = [ProbeRecord.from_dict(p, f"{where} probes[{i}]") for i, p in enumerate(probes or [])]
        return cls(**known, turns=turns, extra=rest, tokens=tokens, events=events, probes=probes)

    def to_json(self) -> str:
        """metadata.json as written to disk (indented, UTF-8 kept)."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"


@dataclass
class ManifestEntry:
    """One line of `manifest.jsonl`: written once a conversation folder is complete, derived
    from its metadata alone (so a folder renamed into place can always be described again)."""

    conversation_id: str
    path: str
    num_turns: int
    duration_sec: float
    num_speakers: int | None = None
    speech_duration_sec: float | None = None
    total_tokens: int | None = None
    text_tokens: int | None = None
    speech_tokens: int | None = None
    source: dict[str, Any] | None = None
    num_probes: int | None = None  # memory probes (docs/memory.md), where there are any
    probes_in_samples: bool | None = None  # their samples follow the turns' in samples.jsonl
    quality: dict[str, Any] | None = None  # the turns' quality scores summarized (quality_summary)
    extra: dict[str, Any] = field(default_factory=dict)

    REQUIRED: ClassVar[dict[str, type | tuple[type, ...]]]

    @classmethod
    def from_metadata(cls, meta: ConversationMetadata) -> ManifestEntry:
        tokens = meta.tokens or {}
        source: dict[str, Any] = {
            k: meta.source[k] for k in ("dataset", "split", "index") if k in meta.source
        }
        return cls(
            conversation_id=meta.conversation_id,
            path=conversation_path(meta.conversation_id),
            num_turns=meta.total_turns,
            duration_sec=meta.total_duration_sec,
            num_speakers=len(meta.speakers),
            speech_duration_sec=meta.speech_duration_sec,
            total_tokens=tokens.get("total_tokens"),
            text_tokens=tokens.get("text_tokens"),
            speech_tokens=tokens.get("speech_tokens"),
            source=source or None,
            num_probes=len(meta.probes) or None,
            probes_in_samples=True if meta.probes and tokens.get("probes_in_samples") else None,
            quality=quality_summary(t.extra.get("quality") for t in meta.turns),
        )

    def with_tokens(self, tokens: dict[str, Any]) -> ManifestEntry:
        return dataclasses.replace(self, **{k: tokens[k] for k in TOKEN_COUNTS})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "conversation_id": self.conversation_id,
            "path": self.path,
            "num_turns": self.num_turns,
            "num_speakers": self.num_speakers,
            "duration_sec": self.duration_sec,
            "speech_duration_sec": self.speech_duration_sec,
            "total_tokens": self.total_tokens,
            "text_tokens": self.text_tokens,
            "speech_tokens": self.speech_tokens,
        }
        if self.source:
            out["source"] = self.source
        out.update(_set(self, "num_probes", "probes_in_samples", "quality"))
        out.update(self.extra)
        return out

    def to_line(self) -> str:
        """The manifest line, compact, with its newline."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"

    @classmethod
    def from_dict(cls, obj: Any, where: str = MANIFEST) -> ManifestEntry:
        return _plain(cls, obj, where)


def quality_summary(blocks: Iterable[Any]) -> dict[str, Any] | None:
    """A conversation's quality scores for its manifest line, from its turns' `quality` blocks
    (docs/quality.md): {key: {"min", "mean", "max"}} of every numeric score any turn has (in the
    order the blocks list them), `turns_scored`, and `turns_flagged` where a quality gate flagged
    turns (kept with `gate_failed`, so a filter drops them without reading the metadata); None
    when no turn was scored. Pure, and here beside the records because a manifest line is derived
    from the metadata alone (synth.quality re-exports it as `conversation_summary`)."""
    values: dict[str, list[float]] = {}
    scored = flagged = 0
    for block in blocks:
        if not isinstance(block, dict) or not block.get("scorers"):
            continue
        scored += 1
        flagged += bool(block.get("gate_failed"))
        for key, value in block.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                values.setdefault(key, []).append(float(value))
    if not scored:
        return None
    out: dict[str, Any] = {
        key: {"min": min(v), "mean": round(sum(v) / len(v), 4), "max": max(v)} for key, v in values.items()
    }
    out["turns_scored"] = scored
    if flagged:
        out["turns_flagged"] = flagged
    return out


for _cls in (TurnRecord, EventRecord, ProbeRecord, ConversationMetadata, ManifestEntry):
    _cls.REQUIRED = _required(_cls)


def samples_jsonl(samples: list[dict[str, Any]]) -> str:
    """samples.jsonl: one compact JSON object per line, line i = turn i."""
    return "".join(json.dumps(s, separators=(",", ":")) + "\n" for s in samples)
