"""Sessions: consecutive dialogs of a source joined into one long conversation, sized for how the
trainers read it.

A session aims at one target and lands within a tolerance of it:
- `tokens`: total_tokens (the curriculum's 8k, 16k, 32k, 64k), within +-`tolerance`;
- `minutes`: the conversation's duration, within +-`tolerance`;
- `mix`: a stage drawn per session (8k:0.4,16k:0.3,...): the session aims inside the stage's
  band (previous stage, stage], at `fill` of the way up;
- `windows` of `window_sec`: for trainers that cut each file into consecutive windows and carry
  state across them (moshi-finetune forks with TTT layers): the speech fills the windows and
  reaches into the last tenth of the last one, and the conversation audio ends exactly at
  windows x window_sec (padded with silence), so no mostly empty window is left.

Sizes are measured, not estimated: the session is produced turn by turn (synth.produce.sessions)
and ends at the turn boundary nearest its target. Where a whole dialog would overshoot, the
dialog is cut at a turn boundary and the rest of it starts the next session, so every turn of
the source appears exactly once. The last session of a source holds what is left (and says so).

Every part keeps the session's one cast: its speakers are mapped by role (order of first
appearance in the part) onto the session's speakers A, B, C..., so the first speaker of every part
has one voice from the session's first turn to its last. A pause (`pause_sec`) separates the
parts, which are listed in metadata (`segments`, with the dialog and its turns)."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from ..domain import Dialog, Probe, Segment, Source, Turn
from ..errors import ConfigError, DialogError, InvalidConversationId
from ..ids import check_conversation_id
from ..options import option
from .build import DialogLimits, build_dialog

WINDOW_TAIL = 0.1  # the speech of a windowed session reaches into the last tenth of its last window


@dataclass(frozen=True)
class SessionTarget:
    """What one session aims at: `kind` 'tokens' or 'seconds', the `aim`, and the band it must
    land in (`low`, `high`); `cap`: a hard upper bound (windows: the file's end)."""

    kind: str
    aim: float
    low: float
    high: float
    cap: float | None = None
    stage: int | None = None
    windows: int | None = None
    window_sec: float | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "aim": round(self.aim, 3)}
        out["band"] = [round(self.low, 3), round(self.high, 3)]
        if self.stage is not None:
            out["stage"] = self.stage
        if self.windows is not None:
            out.update(windows=self.windows, window_sec=self.window_sec)
        return out


@dataclass(frozen=True)
class SessionConfig:
    """How consecutive dialogs are joined into sessions: the target (tokens, minutes, a mix of
    curriculum stages or a trainer's windows) and how near it a session must land."""

    tokens: int | None = option(
        None, flag="--session-tokens", help="join consecutive dialogs into sessions of this many total_tokens"
    )
    minutes: float | None = option(
        None, flag="--session-minutes", help="join consecutive dialogs into sessions of this many minutes"
    )
    mix: tuple[tuple[int, float], ...] = option(
        (),
        flag="--session-mix",
        metavar="STAGE:WEIGHT,...",
        parse=lambda text: SessionConfig.parse_mix(text),
        text=lambda mix: ",".join(f"{s}:{w:g}" for s, w in mix) or None,
        help="a session size drawn per session over curriculum stages, e.g. 8k:0.4,16k:0.3,32k:0.2,64k:0.1 "
        "(each lands inside its stage's band)",
    )
    windows: int | None = option(
        None,
        flag="--session-windows",
        metavar="N",
        help="sessions that fill N windows of --window-sec (trainers that cut each file into windows and "
        "carry state across them): speech reaches into the last tenth of the last window and "
        "conversation.wav ends exactly at N windows",
    )
    window_sec: float = option(300.0, flag="--window-sec", help="the trainer's window, seconds")
    pause_sec: float = option(
        1.5, flag="--session-pause", help="seconds of silence between the dialogs joined in a session"
    )
    fill: float = 0.75  # with a mix: aim at lower + fill * (stage - lower) of the stage's band
    tolerance: float = option(
        0.05,
        flag="--session-tolerance",
        help="how far from --session-tokens or --session-minutes a session may land (a share)",
    )

    def __post_init__(self) -> None:
        given = sum(
            x is not None and x != () for x in (self.tokens, self.minutes, self.mix or None, self.windows)
        )
        if given != 1:
            raise ConfigError(
                "session",
                "give exactly one of session tokens, session minutes, a session mix or session windows",
            )
        if self.tokens is not None and self.tokens <= 0:
            raise ConfigError("session_tokens", "must be positive", self.tokens)
        if self.minutes is not None and self.minutes <= 0:
            raise ConfigError("session_minutes", "must be positive", self.minutes)
        if self.windows is not None and self.windows < 1:
            raise ConfigError("session_windows", "must be at least 1", self.windows)
        if self.window_sec < 10:
            raise ConfigError("window_sec", "must be at least 10 seconds", self.window_sec)
        if self.pause_sec < 0:
            raise ConfigError("session_pause", "must not be negative", self.pause_sec)
        if not 0 < self.tolerance < 0.5:
            raise ConfigError("session_tolerance", "must be between 0 and 0.5", self.tolerance)

    @property
    def by_tokens(self) -> bool:
        return self.tokens is not None or bool(self.mix)

    @staticmethod
    def parse_mix(spec: str) -> tuple[tuple[int, float], ...]:
        """'8k:0.4,16k:0.3' -> ((8192, 0.4), (16384, 0.3)); stages increasing, weights positive."""
        out = []
        for part in spec.split(","):
            m = re.fullmatch(r"\s*(\d+)([kK]?)\s*:\s*([0-9.]+)\s*", part)
            if not m or float(m.group(3)) <= 0 or int(m.group(1)) <= 0:
                raise ConfigError(
                    "session_mix", "expected STAGE:WEIGHT,... like 8k:0.4,16k:0.3,32k:0.2,64k:0.1", spec
                )
            out.append((int(m.group(1)) * (1024 if m.group(2) else 1), float(m.group(3))))
        if [s for s, _ in out] != sorted({s for s, _ in out}):
            raise ConfigError("session_mix", "stages must be strictly increasing", spec)
        return tuple(out)

    def targets(self, seed: int) -> Iterator[SessionTarget]:
        """The target of each session in turn, from a generator of the seed."""
        rng = random.Random(f"{seed}:sessions")
        tol = self.tolerance
        while True:
            if self.tokens is not None:
                yield SessionTarget("tokens", self.tokens, self.tokens * (1 - tol), self.tokens * (1 + tol))
            elif self.minutes is not None:
                sec = self.minutes * 60
                yield SessionTarget("seconds", sec, sec * (1 - tol), sec * (1 + tol))
            elif self.windows is not None:
                end = self.windows * self.window_sec
                low = end - WINDOW_TAIL * self.window_sec
                yield SessionTarget("seconds", end, low, end, end, None, self.windows, self.window_sec)
            else:
                stages = [s for s, _ in self.mix]
                stage = rng.choices(stages, weights=[w for _, w in self.mix])[0]
                lower = ([0, *stages])[stages.index(stage)]
                aim = lower + self.fill * (stage - lower)
                yield SessionTarget("tokens", aim, lower, stage, None, stage)


@dataclass(frozen=True)
class Part:
    """The turns of one source dialog from `first_turn` on: what a session takes next."""

    dialog: Dialog
    first_turn: int

    @property
    def turns(self) -> tuple:
        return self.dialog.turns[self.first_turn :]

    @property
    def roles(self) -> dict[str, str]:
        """The dialog's speakers mapped onto the session's labels by order of first appearance."""
        seen: dict[str, str] = {}
        for turn in self.turns:
            seen.setdefault(turn.speaker, label(len(seen)))
        return seen


class PartQueue:
    """The source as parts for sessions to take, in order. A session puts back the rest of a dialog
    it cut (`put_back`), which then starts the next session. `consumed` (dialog id -> turns already
    in finished sessions, read when the queue is first used: a resumed run) skips what earlier runs
    made. DialogErrors of the source come out as they are, to be reported."""

    def __init__(
        self, items: Iterable[Dialog | DialogError], consumed: Callable[[], Mapping[str, int]] | None = None
    ):
        self._items = iter(items)
        self._back: deque[Part] = deque()
        self._consumed_of = consumed
        self._consumed: Mapping[str, int] | None = None

    def take(self) -> Part | DialogError | None:
        if self._back:
            return self._back.popleft()
        if self._consumed is None:
            self._consumed = self._consumed_of() if self._consumed_of else {}
        for item in self._items:
            if isinstance(item, DialogError):
                return item
            done = self._consumed.get(item.conversation_id, 0)
            if done < len(item.turns):
                return Part(item, done)
        return None

    def put_back(self, part: Part) -> None:
        self._back.appendleft(part)

    def peek(self) -> Part | DialogError | None:
        nxt = self.take()
        if isinstance(nxt, Part):
            self.put_back(nxt)
        return nxt


def join(
    cid: str, parts: list[tuple[Part, int]], pause_sec: float, limits: DialogLimits = DialogLimits()
) -> Dialog:
    """The session Dialog of its parts, each `(part, count)`: the part's first `count` turns, with
    speakers mapped by role onto A, B, C... (one cast for the session)."""
    pairs: list[tuple[str, str]] = []
    voices: dict[str, str] = {}
    segments = []
    for part, count in parts:
        role = part.roles
        start = len(pairs)
        pairs += [(role[t.speaker], t.text) for t in part.turns[:count]]
        for speaker, voice in part.dialog.voices.items():
            if speaker in role:
                voices.setdefault(role[speaker], voice)
        segments.append(
            Segment(part.dialog.source, start, len(pairs) - 1, part.dialog.conversation_id, part.first_turn)
        )
    first = parts[0][0].dialog
    where = Source(**{**first.source.to_dict(), "original_id": cid})
    session = build_dialog(pairs, cid, where, voices, limits, clean=False)
    return Dialog(
        session.conversation_id, session.turns, session.source, session.voices, tuple(segments), pause_sec
    )


def consumed_turns(segments_of: Iterable[list[dict]]) -> dict[str, int]:
    """dialog id -> how many of its turns (from its first) finished sessions hold, from their
    metadata `segments`."""
    out: dict[str, int] = {}
    for segments in segments_of:
        for seg in segments:
            if "dialog" in seg and "source_turns" in seg:
                out[seg["dialog"]] = max(out.get(seg["dialog"], 0), int(seg["source_turns"][1]) + 1)
    return out


def label(k: int) -> str:
    """The session's label of its k-th speaker: A to Z, then S26, S27, ..."""
    return chr(ord("A") + k) if k < 26 else f"S{k}"


def session_id(part: Part) -> str:
    """session_<dialog id>, with _t<N> when the session starts at turn N of its first dialog."""
    first_id = part.dialog.conversation_id
    cid = f"session_{first_id}" + (f"_t{part.first_turn}" if part.first_turn else "")
    try:
        return check_conversation_id(cid)
    except InvalidConversationId:  # too long with the prefix
        digest = hashlib.sha256(f"{first_id}:{part.first_turn}".encode()).hexdigest()[:24]
        return f"session_{digest}"


def decide(target: SessionTarget, without: float | None, with_: float) -> tuple[bool, bool]:
    """Whether a session takes what comes next (a turn, or a whole source session of a coherent
    conversation) and whether it stops after this: `without` and `with_` are its size before and
    after (None before: a session holds at least one). It ends nearest its aim inside its band,
    never past a cap."""
    if without is None:
        return True, with_ >= target.aim
    if target.cap is not None:  # windows: fill up to the end of the file, never past it
        if with_ > target.cap:
            return False, True
        return True, False
    if with_ <= target.aim:
        return True, False
    if with_ > target.high:
        return False, True
    if without < target.low:
        return True, True
    return abs(with_ - target.aim) < abs(target.aim - without), True


def split_coherent(
    dialog: Dialog, targets: Iterator[SessionTarget], size: Callable[[Turn], float], pause: float
) -> list[tuple[Dialog, SessionTarget]]:
    """A coherent conversation cut into pieces sized for the trainers, only at its session
    boundaries (a source session is never cut; pieces of one conversation are never joined with
    another's). Sizes are estimated per turn (`size`, in the target's unit) plus `pause` between
    sessions; what each piece reached is measured when it is made. A probe stays with the piece that
    holds all its evidence; one whose evidence lies in two pieces is dropped and noted there."""
    segments = dialog.segments or (Segment(dialog.source, 0, len(dialog.turns) - 1),)
    sizes = [sum(size(t) for t in dialog.turns[s.first_turn : s.last_turn + 1]) for s in segments]
    groups: list[tuple[list[int], SessionTarget]] = []
    current: list[int] = []
    measured: float | None = None
    target = next(targets)
    for k, seg_size in enumerate(sizes):
        with_ = seg_size if measured is None else measured + pause + seg_size
        take, stop = decide(target, measured, with_)
        if not take:  # it starts the next piece
            groups.append((current, target))
            current, measured, target = [], None, next(targets)
            take, stop = decide(target, None, seg_size)
            with_ = seg_size
        current.append(k)
        measured = with_
        if stop:
            groups.append((current, target))
            current, measured, target = [], None, next(targets)
    if current:
        groups.append((current, target))
    if len(groups) == 1:
        return [(dialog, groups[0][1])]
    return [
        (_piece(dialog, segments, group, p, len(groups)), target) for p, (group, target) in enumerate(groups)
    ]


def _piece(dialog: Dialog, segments: tuple[Segment, ...], group: list[int], p: int, count: int) -> Dialog:
    """Piece `p` of a coherent conversation: the sessions `group`, re-numbered, with the probes
    whose evidence all lies in them."""
    first, last = segments[group[0]].first_turn, segments[group[-1]].last_turn
    inside = range(first, last + 1)
    probes: list[Probe] = []
    notes: list[str] = list(dialog.notes) if p == 0 else []
    cid = f"{dialog.conversation_id}_p{p}"
    for probe in dialog.probes:
        held = [e in inside for e in probe.evidence]
        if all(held):
            probes.append(dataclasses.replace(probe, evidence=tuple(e - first for e in probe.evidence)))
        elif any(held) and max(probe.evidence) in inside:
            notes.append(
                f"{dialog.source.describe()}: probe {probe.probe_id}: its evidence lies in more than one "
                f"piece of the conversation (cut for the session size); dropped"
            )
    segs = tuple(
        dataclasses.replace(
            segments[k], first_turn=segments[k].first_turn - first, last_turn=segments[k].last_turn - first
        )
        for k in group
    )
    source = Source(**{**dialog.source.to_dict(), "original_id": dialog.conversation_id})
    return dataclasses.replace(
        dialog,
        conversation_id=check_conversation_id(cid) if len(cid) <= 128 else _short(cid),
        turns=dialog.turns[first : last + 1],
        source=source,
        segments=segs if len(segs) > 1 or dialog.segments else (),
        probes=tuple(probes),
        notes=tuple(notes),
    )


def _short(cid: str) -> str:
    return "piece_" + hashlib.sha256(cid.encode()).hexdigest()[:24]
