"""Producing sessions of the size asked (synth.dialogs.sessions says what a session is).

A session is made turn by turn: each input turn is rendered in the session's voices, placed on
the session's timeline on trial, and measured (the conversation's end, or total_tokens counted by
the real sample builder on the real durations). The session ends at the turn boundary nearest its
aim that stays inside its band (never past a cap: the end of a windowed session's file); the turn
that would have overshot, and the rest of its dialog, start the next session. Turns are rendered
a few at a time (as many as the rest of the target is likely to need), so little is rendered in
vain, and a session's turns go to the writer's staging as each part is finished.

Sessions are made one after the other (the next one starts where this one ended), so the runner
runs them in order. A bad dialog inside a session (one of its turns cannot be spoken) is left out
of the session and reported; the session goes on with the next dialog."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..dataset.metadata import records_of
from ..dialogs.build import DialogLimits
from ..dialogs.sessions import (
    Part,
    PartQueue,
    SessionConfig,
    SessionTarget,
    decide,
    join,
    label,
    session_id,
    split_coherent,
)
from ..domain import Conversation, Dialog, Source, SynthesizedTurn, Turn, Voice
from ..errors import ConfigError, DialogError
from ..seeding import noise_seed
from .pipeline import STREAM_TURNS, Pipeline
from .timeline import Timeline

ESTIMATED_CHARS_PER_SEC = 18.0  # the embedded voice (17-20 measured): only to size render batches
SESSION_LIMITS = DialogLimits(max_turns=1_000_000, max_total_chars=10**10)


@dataclass
class SessionItem:
    """One session to make: its id (from where it starts), its target, and the queue it takes its
    parts from. `rejected`: the dialogs left out of it, for the runner to report."""

    conversation_id: str
    source: Source
    target: SessionTarget
    queue: PartQueue
    rejected: list[DialogError] = field(default_factory=list)


class SessionProducer:
    """Makes sessions with one pipeline (its engine, casting, sample builder and timeline rules)."""

    def __init__(self, pipeline: Pipeline, config: SessionConfig, limits: DialogLimits = DialogLimits()):
        if config.by_tokens and pipeline.sample_builder is None:
            raise ConfigError("session_tokens", "sessions sized in tokens need training samples")
        self.pipeline = pipeline
        self.config = config
        self.limits = DialogLimits(
            max_turns=SESSION_LIMITS.max_turns,
            max_turn_chars=limits.max_turn_chars,
            max_total_chars=SESSION_LIMITS.max_total_chars,
            max_speakers=limits.max_speakers,
        )

    def items(
        self,
        dialogs: Iterable[Dialog | DialogError],
        consumed: Callable[[], Mapping[str, int]] | None = None,
    ) -> Iterator[SessionItem | DialogError]:
        """The sessions of a source, lazily: each one's start is known only once the one before
        has been made, so the runner must produce them in order (it does, for SessionItems)."""
        queue = PartQueue(dialogs, consumed)
        targets = self.config.targets(self.pipeline.config.seed)
        while True:
            nxt = queue.peek()
            if nxt is None:
                return
            if isinstance(nxt, DialogError):
                queue.take()
                yield nxt
                continue
            cid = session_id(nxt)
            source = Source(**{**nxt.dialog.source.to_dict(), "original_id": cid})
            yield SessionItem(cid, source, next(targets), queue)

    def produce(
        self, item: SessionItem, sink: Callable[[SynthesizedTurn], SynthesizedTurn] | None = None
    ) -> Conversation:
        return _Session(self, item, sink).make()


class _Session:
    """The state of one session while it is made."""

    def __init__(self, producer: SessionProducer, item: SessionItem, sink: Any):
        self.p = producer
        self.pipeline = producer.pipeline
        self.item = item
        self.target = item.target
        self.sink = sink or (lambda t: t)
        self.timeline = Timeline(self.pipeline.config.gap, self.pipeline.config.seed, item.conversation_id)
        self.casting: dict[str, Voice] = {}
        self.parts: list[tuple[Part, int]] = []  # (part, how many of its turns were taken)
        self.turns: list[SynthesizedTurn] = []  # already handed to the sink
        self.done_tokens = 0.0  # total_tokens of the finished parts
        self.source_turns = 0  # input turns taken so far
        self.full = False

    # -- measuring -------------------------------------------------------------------------------
    def size(self, timeline: Timeline, part_turns: list[SynthesizedTurn]) -> float:
        if self.target.kind == "seconds":
            return timeline.end
        builder = self.pipeline.sample_builder
        assert builder is not None
        if not part_turns:
            return self.done_tokens
        records = records_of(part_turns, sorted({t.speaker for t in part_turns}))
        return self.done_tokens + float(builder.build(self.item.conversation_id, records)[1]["total_tokens"])

    def decide(self, without: float | None, with_: float) -> tuple[bool, bool]:
        """(take the turn, stop after this decision)."""
        return decide(self.target, without, with_)

    def batch(self, remaining: list[Turn], measured: float) -> int:
        """How many turns to render next: about what the rest of the target needs, plus one."""
        if self.target.cap is None and measured >= self.target.aim:
            return 1
        left = max(0.0, self.target.aim - measured)
        if self.target.kind == "seconds":
            per_turn = [len(t.text) / ESTIMATED_CHARS_PER_SEC + 0.5 for t in remaining[:STREAM_TURNS]]
        else:
            per_turn = [350.0 + len(t.text) / 4 for t in remaining[:STREAM_TURNS]]  # llama-omni: 300
        n, total = 0, 0.0
        for cost in per_turn:
            n += 1
            total += cost
            if total >= left:
                break
        return max(1, min(STREAM_TURNS, n + 1))

    # -- casting ---------------------------------------------------------------------------------
    def cast_roles(self, part: Part) -> dict[str, str]:
        """The part's speakers -> session labels; labels new to the session get voices, the ones
        already cast keep theirs."""
        roles = part.roles
        labels = list(dict.fromkeys([*self.casting, *roles.values()]))
        if len(labels) > len(self.casting):
            wanted = {roles[s]: v for s, v in part.dialog.voices.items() if s in roles}
            fixed = {lab: v.id for lab, v in self.casting.items()}
            probe = Dialog(
                self.item.conversation_id,
                tuple(Turn(lab, ".") for lab in labels),
                self.item.source,
                {**wanted, **fixed},
            )
            self.casting = self.pipeline.cast(probe)
        return roles

    # -- making ------------------------------------------------------------------------------------
    def make(self) -> Conversation:
        queue = self.item.queue
        while not self.full:
            part = queue.take()
            if part is None:
                break
            if isinstance(part, DialogError):
                self.item.rejected.append(part)
                continue
            try:
                taken = self.take_part(part)
            except DialogError as exc:
                self.item.rejected.append(exc)
                continue
            if taken < len(part.turns):
                queue.put_back(Part(part.dialog, part.first_turn + taken))
        if not self.parts:
            raise DialogError(
                "no turn of this session could be made (its dialogs were rejected)",
                self.item.source.describe(),
                "",
                self.item.conversation_id,
            )
        dialog = join(self.item.conversation_id, self.parts, self.p.config.pause_sec, self.p.limits)
        conv = self.pipeline.assemble(dialog, self.casting, self.turns)
        conv.extra["session"] = self.record(conv, queue.peek() is None and not self.full)
        return conv

    def take_part(self, part: Part) -> int:
        """Render and place the part's turns until the session is full; hand them to the sink.
        Returns how many of its turns were taken. A DialogError leaves the session as it was."""
        roles = self.cast_roles(part)
        self.pipeline.check_speakable(
            part.dialog, {s: self.casting[r] for s, r in roles.items()}, part.first_turn
        )
        timeline = copy.deepcopy(self.timeline)
        where = part.dialog.source.describe()
        placed: list[SynthesizedTurn] = []
        taken = 0
        turn_id = len(self.turns)
        measured: float | None = self.size(timeline, []) if self.turns else None
        began = time.perf_counter()
        while taken < len(part.turns) and not self.full:
            remaining = list(part.turns[taken:])
            count = self.batch(remaining, measured or 0.0)
            texts = [(t.text, self.casting[roles[t.speaker]]) for t in remaining[:count]]
            first = self.source_turns + taken
            seeds = [
                noise_seed(self.pipeline.config.seed, self.item.conversation_id, f"turn:{first + n}")
                for n in range(count)
            ]
            for pieces in self.pipeline.renderer.pieces(texts, None, seeds):
                i = part.first_turn + taken
                turn = part.dialog.turns[i]
                speaker = roles[turn.speaker]
                voice = self.casting[speaker]
                field = f"turns[{i}].text"
                others = tuple(sorted({v.id for s, v in self.casting.items() if s != speaker}))
                parts = self.pipeline.parts(
                    turn.text, voice, pieces, where, field, part.dialog.conversation_id, speaker, others, i
                )
                trial = copy.deepcopy(timeline)
                join_sec = self.p.config.pause_sec if self.turns and taken == 0 else None
                new = self.pipeline.place(
                    trial, turn_id, speaker, voice, parts, self.source_turns + taken, began, join_sec
                )
                size = self.size(trial, placed + new)
                take, stop = self.decide(measured, size)
                if take:
                    timeline, placed, measured = trial, placed + new, size
                    turn_id += len(new)
                    taken += 1
                began = time.perf_counter()
                if stop:
                    self.full = True
                    break
        if taken:
            self.timeline = timeline
            self.turns += [self.sink(t) for t in placed]
            self.parts.append((part, taken))
            self.source_turns += taken
            if self.target.kind == "tokens":
                self.done_tokens = measured or 0.0
        return taken

    def record(self, conv: Conversation, last: bool) -> dict[str, Any]:
        return session_record(self.target, conv, last)


def session_record(t: SessionTarget, conv: Conversation, last: bool) -> dict[str, Any]:
    """metadata `session`: the target, what was reached, whether it is inside the band, and for
    windows the length the conversation audio is padded to."""
    reached: dict[str, Any] = {"seconds": round(conv.total_duration_sec, 3)}
    if conv.tokens is not None:
        reached["tokens"] = conv.tokens["total_tokens"]
    value = reached["tokens"] if t.kind == "tokens" else conv.total_duration_sec
    out: dict[str, Any] = {
        "target": t.to_dict(),
        "reached": reached,
        "within": t.low - 1e-6 <= value <= t.high + 1e-6,
        "last_of_source": last,
    }
    if t.window_sec is not None:
        # the file ends at whole windows: the asked ones, or (speech past them: a turn longer than
        # the file) as many as the speech needs; never a mostly empty extra window, so the
        # source's last session, when short, ends with its speech
        windows = max(t.windows or 1, math.ceil(value / t.window_sec - 1e-9))
        if value >= (windows - 0.5) * t.window_sec:
            out["audio_sec"] = round(windows * t.window_sec, 3)
            out["windows"] = windows
    return out


@dataclass(frozen=True)
class PieceItem:
    """A piece of a coherent conversation cut at its session boundaries, with its target."""

    dialog: Dialog
    target: SessionTarget
    last: bool

    @property
    def conversation_id(self) -> str:
        return self.dialog.conversation_id

    @property
    def source(self) -> Source:
        return self.dialog.source


class CoherentSessionProducer:
    """Sessions of the size asked from coherent multi-session conversations (LoCoMo, MSC, ...):
    each conversation is cut only at its own session boundaries (synth.dialogs.sessions.
    split_coherent), by sizes estimated from its text; each piece is made whole by the pipeline
    (probes included) and its metadata `session` says what it reached. Pieces never join two
    conversations, so they are made in any order (in flight together)."""

    def __init__(self, pipeline: Pipeline, config: SessionConfig):
        if config.by_tokens and pipeline.sample_builder is None:
            raise ConfigError("session_tokens", "sessions sized in tokens need training samples")
        self.pipeline = pipeline
        self.config = config

    def estimate(self, kind: str) -> Callable[[Turn], float]:
        """A turn's size before it is spoken: seconds from its characters, or the tokens its
        sample adds (the speech profile's positions, the template, the target's words)."""
        seconds = lambda t: len(t.text) / ESTIMATED_CHARS_PER_SEC + 0.4  # with a turn gap
        if kind == "seconds":
            return seconds
        builder = self.pipeline.sample_builder
        profile = getattr(getattr(builder, "config", None), "profile", None)
        positions = (lambda t: profile.positions(seconds(t))) if profile is not None else (lambda t: 300)
        return lambda t: positions(t) + 40 + len(t.text) / 4

    def items(self, dialogs: Iterable[Dialog | DialogError]) -> Iterator[PieceItem | DialogError]:
        targets = self.config.targets(self.pipeline.config.seed)
        for dialog in dialogs:
            if isinstance(dialog, DialogError):
                yield dialog
                continue
            size = self.estimate("tokens" if self.config.by_tokens else "seconds")
            pieces = split_coherent(dialog, targets, size, dialog.join_pause_sec or 0.0)
            for k, (piece, target) in enumerate(pieces):
                yield PieceItem(piece, target, k == len(pieces) - 1)

    def produce(self, item: PieceItem, sink: Callable[[Any], Any] | None = None) -> Conversation:
        conv = self.pipeline.run(item.dialog, sink)
        conv.extra["session"] = session_record(item.target, conv, item.last)
        return conv


__all__ = [
    "CoherentSessionProducer",
    "PieceItem",
    "SessionItem",
    "SessionProducer",
    "label",
    "session_record",
]
