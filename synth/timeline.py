"""The conversation timeline: turns one after another with a gap drawn before each turn but
the first. Gaps come from a seeded distribution, so the timing is part of the reproducible
dataset and independent of the order in which conversations are processed."""

from __future__ import annotations

import random
from dataclasses import dataclass

from .errors import ConfigError, SynthError
from .seeding import conversation_rng

KINDS = ("fixed", "uniform", "normal", "lognormal")


@dataclass(frozen=True)
class GapDistribution:
    """`fixed:X`, `uniform:LO,HI`, `normal:MEAN,STD` or `lognormal:MEDIAN,SIGMA` (seconds),
    clipped to [min_sec, max_sec]. Default: normal around 0.4 s, as in casual dialog turn-taking."""

    kind: str = "normal"
    a: float = 0.4
    b: float = 0.2
    min_sec: float = 0.05
    max_sec: float = 2.0

    @classmethod
    def parse(cls, spec: str, min_sec: float = 0.05, max_sec: float = 2.0) -> GapDistribution:
        kind, _, args = spec.partition(":")
        try:
            values = [float(x) for x in args.split(",")] if args else []
        except ValueError:
            raise ConfigError("gap", "parameters must be numbers", spec) from None
        need = 1 if kind == "fixed" else 2
        if kind not in KINDS or len(values) != need:
            raise ConfigError(
                "gap", "expected fixed:X, uniform:LO,HI, normal:MEAN,STD or lognormal:MEDIAN,SIGMA", spec
            )
        if any(v < 0 for v in values) or (kind == "uniform" and values[0] > values[1]):
            raise ConfigError("gap", "parameters must be non-negative and ordered", spec)
        if min_sec < 0 or max_sec < min_sec:
            raise SynthError("gap bounds must satisfy 0 <= min <= max")
        return cls(kind, values[0], values[-1] if need == 2 else 0.0, min_sec, max_sec)

    def spec(self) -> str:
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
    """Places the turns of one conversation one after another: each turn but the first starts a
    gap (drawn from the conversation's own generator) after the end of the one before."""

    def __init__(self, gap: GapDistribution, seed: int, conversation_id: str):
        self.gap = gap
        self.rng = conversation_rng(seed, conversation_id, "timeline")
        self.end = 0.0
        self.turns = 0

    def place(self, duration_sec: float, gap_sec: float | None = None) -> float:
        """The start time of the next turn, which lasts `duration_sec`; `gap_sec` replaces the
        drawn gap (a session's pause between its parts)."""
        gap = 0.0 if not self.turns else self.gap.sample(self.rng) if gap_sec is None else gap_sec
        t = self.end + gap
        start = round(t, 3)
        self.end = start + duration_sec
        self.turns += 1
        return start
