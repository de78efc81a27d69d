"""Plain dataclasses for the domain: what goes in (Dialog, Turn), who speaks (Voice) and what
comes out (SynthesizedTurn, Conversation). No behaviour beyond small derived properties."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .words import Words


@dataclass(frozen=True)
class Turn:
    """One utterance of a dialog: the speaker's label and the clean text that is spoken. `meta`:
    what the source says of the turn that is not spoken (its own id such as LoCoMo's "D1:3", an
    image's caption, a date), kept in the turn's metadata."""

    speaker: str
    text: str
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Source:
    """Where a dialog came from, recorded in metadata so a dataset stays auditable."""

    dataset: str
    split: str | None = None
    index: int | None = None
    path: str | None = None
    line: int | None = None
    original_id: str | None = None

    def describe(self) -> str:
        """Human location for error messages: 'file.jsonl line 7', 'locomo10.json item 3' (an item
        of a JSON array) or 'daily_dialog train #3'."""
        if self.path is not None:
            if self.line is not None:
                return f"{self.path} line {self.line}"
            return f"{self.path} item {self.index}" if self.index is not None else self.path
        where = self.dataset + (f" {self.split}" if self.split else "")
        return f"{where} #{self.index}" if self.index is not None else where

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class Skipped:
    """A source record left out by a rule the user set (e.g. convert --min-duration), reported
    as such, never as a failure."""

    where: str
    reason: str
    conversation_id: str = ""


@dataclass(frozen=True)
class Segment:
    """One source dialog inside a session: its source and its turns' range in the session's
    input turns (inclusive); `dialog_id` and `source_first` say which dialog and from which of its
    turns (a dialog cut at a turn boundary goes on in the next session)."""

    source: Source
    first_turn: int
    last_turn: int
    dialog_id: str | None = None
    source_first: int = 0
    info: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """What the source says of this part (a session's number, its date or the time since the last
    one, as given), written into its metadata segment."""


@dataclass(frozen=True)
class Probe:
    """A memory probe of a coherent conversation: a question whose answer lies in earlier turns
    (`evidence`: indices into the dialog's turns, in order; `evidence_ids`: the source's own ids
    of them). `adversarial`: the answer is that the conversation does not say."""

    probe_id: str
    question: str
    answer: str
    evidence: tuple[int, ...]
    evidence_ids: tuple[str, ...] = ()
    category: str | None = None
    adversarial: bool = False
    scoring: str = "f1"  # how an answer is scored: see synth.workflows.memory_score.SCORING
    meta: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Dialog:
    """A conversation to synthesize. `conversation_id` is already validated as path-safe. A
    session (several source dialogs joined) lists its parts in `segments`; `join_pause_sec` is the
    pause before each part but the first."""

    conversation_id: str
    turns: tuple[Turn, ...]
    source: Source
    voices: Mapping[str, str] = field(default_factory=dict)  # per-dialog speaker -> voice id
    segments: tuple[Segment, ...] = ()
    join_pause_sec: float | None = None
    probes: tuple[Probe, ...] = ()
    notes: tuple[str, ...] = ()  # what reading left out (a turn, a probe), each naming where

    def starts_segment(self, turn_index: int) -> bool:
        return any(s.first_turn == turn_index for s in self.segments[1:])

    @property
    def speakers(self) -> list[str]:
        """Speakers in order of first appearance: that order is the speaker_id of each."""
        seen: dict[str, None] = {}
        for turn in self.turns:
            seen.setdefault(turn.speaker, None)
        return list(seen)


@dataclass(frozen=True)
class Voice:
    """A voice in the catalog. `params` are engine-specific knobs (speaker index, vocal-tract
    factor, speaking rate); `meta` is descriptive (gender, accent, base speaker)."""

    id: str
    engine: str
    model: str
    speaker: str
    params: Mapping[str, Any] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def language(self) -> str | None:
        """ISO 639-1 code of the language it speaks: its `language` attribute, else the model's
        name when it says (Piper's en_US-joe-medium), else None (unknown)."""
        value = self.meta.get("language")
        if value:
            return str(value)[:2].lower()
        m = re.match(r"([a-z]{2})[_-][A-Z]{2}\b", self.model)
        return m.group(1) if m else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "engine": self.engine,
            "model": self.model,
            "speaker": self.speaker,
            "params": dict(self.params),
            **({"meta": dict(self.meta)} if self.meta else {}),
        }


@dataclass
class SynthesizedTurn:
    """A turn after synthesis and audio post-processing: 16 kHz mono float32 in [-1, 1]."""

    turn_id: int
    speaker: str
    voice: Voice
    text: str
    audio: np.ndarray
    sample_rate: int
    start_time: float = 0.0
    synthesis_sec: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # per-turn metadata (ASR check, source file)
    source_turn: int = -1  # the input turn it speaks (a long turn split in parts shares it)
    stored_samples: int | None = None  # set once the audio is on disk and let go (`released`)
    words: Words | None = None  # the transcript's words, seconds from the turn's start
    fullband: np.ndarray | None = None  # the same turn at the full-band rate (conversation audio)

    @property
    def num_samples(self) -> int:
        return self.stored_samples if self.stored_samples is not None else int(self.audio.shape[0])

    @property
    def duration_sec(self) -> float:
        return self.num_samples / self.sample_rate

    @property
    def end_time(self) -> float:
        return self.start_time + self.duration_sec


@dataclass
class SpokenProbe:
    """A probe whose question (and, if asked, answer) is spoken: 16 kHz mono float32. Released
    (audio let go) once written, like a turn."""

    index: int
    probe: Probe
    asked_by: str
    voice: Voice
    audio: np.ndarray
    sample_rate: int
    time: float = 0.0
    placement: str = "end"
    answer_audio: np.ndarray | None = None
    answer_voice: Voice | None = None
    stored_samples: int | None = None

    @property
    def duration_sec(self) -> float:
        n = self.stored_samples if self.stored_samples is not None else int(self.audio.shape[0])
        return n / self.sample_rate


@dataclass
class ConversationEvent:
    """Something heard that is not a turn (a listener's "mm-hm"): it never gets a training
    sample nor shifts turn ids, and is heard only in the conversation-level audio. `start` is on
    the conversation timeline; audio is 16 kHz mono float32."""

    kind: str
    speaker: str
    voice: Voice
    text: str
    start: float
    audio: np.ndarray
    sample_rate: int
    fullband: np.ndarray | None = None  # the same audio at the full-band rate

    @property
    def end(self) -> float:
        return self.start + self.audio.shape[0] / self.sample_rate


@dataclass
class Conversation:
    """A finished conversation, ready for the writer: turns placed on a timeline, the metadata
    extras (engine, seed, sample rate, gaps) that make it reproducible, and its training samples
    with their token counts (None when no sample builder was given)."""

    dialog: Dialog
    casting: Mapping[str, Voice]
    turns: list[SynthesizedTurn]
    extra: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] | None = None
    tokens: dict[str, Any] | None = None
    events: list[ConversationEvent] = field(default_factory=list)
    probes: list[SpokenProbe] = field(default_factory=list)  # memory probes, spoken (not turns)
    probe_samples: list[dict[str, Any]] | None = None  # their samples (target kind `answer`)

    @property
    def conversation_id(self) -> str:
        return self.dialog.conversation_id

    @property
    def total_duration_sec(self) -> float:
        """The end of the latest-ending turn (turns may overlap)."""
        return max((t.end_time for t in self.turns), default=0.0)

    @property
    def speech_duration_sec(self) -> float:
        return sum(t.duration_sec for t in self.turns)


def released(turn: SynthesizedTurn) -> SynthesizedTurn:
    """The turn without its audio (written to disk already): its length is kept, so timings,
    metadata and samples can still be made from it, but it holds no memory."""
    return replace(turn, audio=_NO_AUDIO, fullband=None, stored_samples=turn.num_samples)


def released_probe(probe: SpokenProbe) -> SpokenProbe:
    """The probe without its audio (written already), its length kept."""
    return replace(probe, audio=_NO_AUDIO, answer_audio=None, stored_samples=int(probe.audio.shape[0]))


_NO_AUDIO = np.zeros(0, dtype=np.float32)
