"""The conversation timeline: turns one after another with a gap drawn before each turn but
the first. Gaps come from a seeded distribution, so the timing is part of the reproducible
dataset and independent of the order in which conversations are processed."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from ..errors import ConfigError, SynthError
from ..seeding import conversation_rng

KINDS = ("fixed", "uniform", "normal", "lognormal")
PRESETS = {
    # Speaker changes in real conversation: offsets cluster around +200 ms, overlaps are common
    # and short, long silences rare (Stivers et al. 2009, PNAS 106(26), modal offset 0-200 ms in
    # ten languages; Levinson & Torreira 2015, Front. Psychol. 6:731, Switchboard; Heldner &
    # Edlund 2010, J. Phonetics 38(4)). normal(0.2, 0.45) clipped to [-0.8, 2.0] puts about a
    # third of speaker changes in overlap, nearly all of them under 800 ms.
    "conversational": ("normal:0.2,0.45", -0.8, 2.0),
}
SELF_GAP_SEC = 0.05  # the least pause between two turns of one speaker (nobody overlaps themself)
MAX_OVERLAP_SHARE = 0.5  # a turn starts in the second half of the turn it overlaps, never earlier


@dataclass(frozen=True)
class GapDistribution:
    """The offset from the end of the conversation so far (the last speaker to stop) to the
    start of the next turn: `fixed:X`, `uniform:LO,HI`, `normal:MEAN,STD` or
    `lognormal:MEDIAN,SIGMA` (seconds), clipped to [min_sec, max_sec], or the preset
    `conversational` (overlaps included, see PRESETS). Negative offsets are overlaps. Default:
    normal around 0.4 s with no overlap, the classic layout."""

    kind: str = "normal"
    a: float = 0.4
    b: float = 0.2
    min_sec: float = 0.05
    max_sec: float = 2.0
    preset: str | None = None

    @classmethod
    def parse(
        cls, spec: str | GapDistribution, min_sec: float | None = None, max_sec: float | None = None
    ) -> GapDistribution:
        if isinstance(spec, GapDistribution):  # parsed already (a command-line flag's value)
            return spec
        if spec in PRESETS:
            inner, lo, hi = PRESETS[spec]
            gap = cls.parse(inner, lo if min_sec is None else min_sec, hi if max_sec is None else max_sec)
            return replace(gap, preset=spec)
        min_sec = 0.05 if min_sec is None else min_sec
        max_sec = 2.0 if max_sec is None else max_sec
        kind, _, args = spec.partition(":")
        try:
            values = [float(x) for x in args.split(",")] if args else []
        except ValueError:
            raise ConfigError("gap", "parameters must be numbers", spec) from None
        need = 1 if kind == "fixed" else 2
        if kind not in KINDS or len(values) != need:
            raise ConfigError(
                "gap",
                "expected fixed:X, uniform:LO,HI, normal:MEAN,STD, lognormal:MEDIAN,SIGMA or "
                + " or ".join(PRESETS),
                spec,
            )
        if kind == "uniform" and values[0] > values[1]:
            raise ConfigError("gap", "uniform bounds must be ordered", spec)
        if kind != "fixed" and values[1] < 0 or kind == "lognormal" and values[0] <= 0:
            raise ConfigError("gap", "spreads must be non-negative (and a lognormal median positive)", spec)
        if max_sec < min_sec:
            raise SynthError("gap bounds must satisfy min <= max")
        return cls(kind, values[0], values[-1] if need == 2 else 0.0, min_sec, max_sec)

    @property
    def overlaps(self) -> bool:
        return self.min_sec < 0

    def spec(self) -> str:
        if self.preset is not None:
            return self.preset
        return f"{self.kind}:{self.a:g}" + (f",{self.b:g}" if self.kind != "fixed" else "")

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            value = self.a
        elif self.kind == "uniform":
            value = rng.uniform(self.a, self.b)
        elif self.kind == "normal":
            value = rng.gauss(self.a, self.b)
        else:
            import math

            value = rng.lognormvariate(math.log(max(self.a, 1e-6)), self.b)
        return round(min(max(value, self.min_sec), self.max_sec), 3)


class Timeline:
    """Places the turns of one conversation: each turn but the first starts a gap (drawn from the
    conversation's own generator) after the end of the conversation so far. A negative gap is an
    overlap with the turn before, allowed when another speaker is talking and bounded so that the
    turns stay in start order (a turn begins in the second half of the turn it overlaps) and
    nobody overlaps themself."""

    def __init__(self, gap: GapDistribution, seed: int, conversation_id: str):
        self.gap = gap
        self.rng = conversation_rng(seed, conversation_id, "timeline")
        self.end = 0.0  # when the last speaker stops
        self.turns = 0
        self._last: tuple[str | None, float, float] = (None, 0.0, 0.0)  # speaker, start, duration
        self._speaker_end: dict[str | None, float] = {}

    def place(self, duration_sec: float, gap_sec: float | None = None, speaker: str | None = None) -> float:
        """The start time of the next turn, which lasts `duration_sec`; `gap_sec` replaces the
        drawn gap (a session's pause between its parts)."""
        gap = 0.0 if not self.turns else self.gap.sample(self.rng) if gap_sec is None else gap_sec
        t = self.end + gap
        if gap < 0:
            last_speaker, last_start, last_duration = self._last
            floor = last_start + MAX_OVERLAP_SHARE * last_duration
            if speaker is not None and speaker == last_speaker:
                floor = self.end + SELF_GAP_SEC
            own = self._speaker_end.get(speaker)
            if own is not None:
                floor = max(floor, own + SELF_GAP_SEC)
            t = max(t, floor)
        start = round(t, 3)
        self.end = max(self.end, start + duration_sec)
        self._last = (speaker, start, duration_sec)
        self._speaker_end[speaker] = start + duration_sec
        self.turns += 1
        return start
