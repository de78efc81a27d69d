"""Backchannels: the short listener responses ("mm-hm", "right") that full-duplex models must
learn to hear and make while someone else holds the floor. They are planned here, purely, from the
turns already on the timeline (their speakers, spans and word timings); `speak` renders them in
the listener's voice and they become events, never turns.

A turn of at least MIN_TURN_SEC gives one opportunity, plus one for every further EVERY_SEC;
each is taken with probability `rate`. A backchannel starts just after a word boundary (the widest
pause in its stretch of the turn, so it lands where listeners respond: at the end of a phrase),
never in the turn's first LEAD_SEC nor its last TAIL_SEC, and the listener is the person the
speaker answers (the previous turn's speaker), else the next speaker, else any other."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..audio import silence_bounds
from ..domain import ConversationEvent, SynthesizedTurn, Voice
from .render import TurnRenderer

TEXTS = ("yeah", "right", "okay", "uh-huh", "mm-hm", "I see", "sure", "oh really?", "exactly")
MIN_TURN_SEC = 2.0
EVERY_SEC = 5.0
LEAD_SEC = 0.8
TAIL_SEC = 0.6
DELAY_SEC = (0.05, 0.3)  # after the word boundary
CLEARANCE_SEC = 0.1  # between a backchannel and the listener's own speech


@dataclass(frozen=True)
class PlannedBackchannel:
    """A backchannel to render: who says what, when, and during which turn."""

    turn_id: int  # the turn it is heard in
    listener: str
    text: str
    start: float  # on the conversation timeline


def opportunities(duration_sec: float) -> int:
    """How many backchannel opportunities a turn of this length gives (the rule above)."""
    if duration_sec < MIN_TURN_SEC:
        return 0
    return 1 + int((duration_sec - MIN_TURN_SEC) // EVERY_SEC)


def _listener(turns: Sequence[SynthesizedTurn], i: int, speakers: Sequence[str]) -> str | None:
    speaker = turns[i].speaker
    for j in (i - 1, i + 1):
        if 0 <= j < len(turns) and turns[j].speaker != speaker:
            return turns[j].speaker
    others = [s for s in speakers if s != speaker]
    return others[0] if others else None


def _boundaries(turn: SynthesizedTurn, lo: float, hi: float) -> list[tuple[float, float]]:
    """(pause length, time) of the word boundaries of a turn inside [lo, hi]."""
    if not turn.words:
        return []
    out = []
    for a, b in zip(turn.words, turn.words[1:]):
        t = turn.start_time + a.end
        if lo <= t <= hi:
            out.append((b.start - a.end, t))
    return out


def plan(
    turns: Sequence[SynthesizedTurn], speakers: Sequence[str], rate: float, rng: random.Random
) -> list[PlannedBackchannel]:
    """Where backchannels go, in time order (durations are not known yet: `fits` checks them)."""
    planned: list[PlannedBackchannel] = []
    if rate <= 0:
        return planned
    for i, turn in enumerate(turns):
        count = opportunities(turn.duration_sec)
        if not count:
            continue
        listener = _listener(turns, i, speakers)
        if listener is None:
            continue
        lo, hi = turn.start_time + LEAD_SEC, turn.end_time - TAIL_SEC
        width = (hi - lo) / count
        for k in range(count):
            if rng.random() >= rate:
                continue
            a, b = lo + k * width, lo + (k + 1) * width
            candidates = _boundaries(turn, a, b)
            at = max(candidates)[1] if candidates else (a + b) / 2
            at += rng.uniform(*DELAY_SEC)
            planned.append(PlannedBackchannel(turn.turn_id, listener, rng.choice(TEXTS), round(at, 3)))
    return planned


def fits(
    start: float,
    duration: float,
    listener: str,
    turns: Sequence[SynthesizedTurn],
    taken: list[tuple[float, float]],
) -> bool:
    """Whether a backchannel of `duration` at `start` stays clear of the listener's own turns
    and of the listener's other backchannels (`taken`)."""
    end = start + duration
    for t in turns:
        if (
            t.speaker == listener
            and start < t.end_time + CLEARANCE_SEC
            and t.start_time - CLEARANCE_SEC < end
        ):
            return False
    return all(end + CLEARANCE_SEC <= a or b + CLEARANCE_SEC <= start for a, b in taken)


def speak(
    renderer: TurnRenderer,
    planned: Sequence[PlannedBackchannel],
    casting: Mapping[str, Voice],
    turns: Sequence[SynthesizedTurn],
    seeds: Sequence[int | None] | None = None,
) -> list[ConversationEvent]:
    """The planned backchannels spoken in their listeners' voices in one engine call (`seeds`:
    each one's noise seed); one that would run into the listener's own speech (or another of
    theirs) is left out."""
    if not planned:
        return []
    rate = renderer.sample_rate
    spoken = renderer.pieces([(p.text, casting[p.listener]) for p in planned], None, seeds)
    events: list[ConversationEvent] = []
    taken: dict[str, list[tuple[float, float]]] = {}
    for p, pieces in zip(planned, spoken):
        whole = renderer.finish(pieces)
        said = whole.cut(*silence_bounds(whole.audio, rate, 0.02), rate, renderer.fullband_rate)
        audio = said.audio
        mine = taken.setdefault(p.listener, [])
        if not audio.size or not fits(p.start, audio.size / rate, p.listener, turns, mine):
            continue
        mine.append((p.start, p.start + audio.size / rate))
        events.append(
            ConversationEvent(
                "backchannel", p.listener, casting[p.listener], p.text, p.start, audio, rate, said.full
            )
        )
    return events
