"""Quality gates and best-of-N takes at generate time (docs/quality.md): each turn is scored by
the scorers asked for (synth.quality) and checked against thresholds (`--gate wer<=0.2`); a turn
that fails is synthesized again, at most `takes` times in all, and the best take is kept. The ASR
retry (asr_retry) is the same loop with one judge, the word error rate.

A take is deterministic from (seed, conversation id, turn, take number): take 0 is the turn as the
voice says it; take k > 0 is said at a speaking rate drawn for it (within RATE_SPREAD of the
voice's, through the voice's own rate parameter: Piper's length_scale, Kokoro's speed), so that
even an engine without sampling noise says it differently; an engine with noise (Piper's VITS)
also draws new noise each take, from the take's own seed (Pipeline.take_seed). An engine with
neither is not asked twice.

The best take: the first that passes every gate (the loop stops there); when none does, the one
that fails the fewest gates, then the one with the better score on the first gate, then on the
second, ..., then the earliest. A turn that never passes rejects its dialog (GateFailed, listed in
failures.jsonl with the scores) or, with `gate_fail="flag"`, is kept with `gate_failed` naming the
gates it fails. Every turn scored carries `takes` (the syntheses made) and `take` (the kept one,
0 first) in its `quality` block."""

from __future__ import annotations

import math
import operator
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..domain import SynthesizedTurn, Voice
from ..errors import ConfigError, GateFailed
from ..options import option
from ..quality import KEYS, SCORER_KEYS, Scorer, TurnAudio, higher_is_worse, parse_scorers, quality_block
from ..quality.base import TEXT_KEYS
from ..seeding import conversation_rng
from .render import Spoken

GATE_FAIL = ("reject", "flag")
RATE_SPREAD = 0.08  # a retake's speaking rate: within exp(+-0.08) of the voice's (about +-8%)
RATE_PARAMS = ("length_scale", "speed")  # the voice parameter that sets its speaking rate
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_GATE = re.compile(r"\s*([a-z_0-9]+)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*")


@dataclass(frozen=True)
class Gate:
    """A threshold on one stored score: `wer<=0.2`, `dnsmos_ovrl>=2.5`."""

    key: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> Gate:
        m = _GATE.fullmatch(str(text))
        if not m:
            raise ConfigError("gate", "expected SCORE<=X or SCORE>=X (e.g. wer<=0.2, dnsmos_ovrl>=2.5)", text)
        key, op, value = m.groups()
        numeric = [k for k in KEYS if k not in TEXT_KEYS]
        if key not in numeric:
            raise ConfigError("gate", f"unknown score {key!r}: choose from {', '.join(numeric)}", text)
        try:
            number = float(value)
        except ValueError:
            raise ConfigError("gate", f"{value!r} is not a number", text) from None
        return cls(key, op, number)

    def passes(self, block: Mapping[str, Any]) -> bool:
        value = block.get(self.key)
        return isinstance(value, (int, float)) and math.isfinite(value) and _OPS[self.op](value, self.value)

    def scorer(self) -> str:
        return next(name for name, keys in SCORER_KEYS.items() if self.key in keys)

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.value:g}"

    def spec(self) -> str:
        """As written (what dataset.json records)."""
        return str(self)


def parse_gates(items: str | Sequence[str | Gate]) -> tuple[Gate, ...]:
    """['wer<=0.2', 'dnsmos_ovrl>=2.5'] (or one comma-separated text; 'none') -> Gates."""
    if isinstance(items, str):
        items = [i for i in items.split(",") if i.strip() and i.strip() != "none"]
    return tuple(i if isinstance(i, Gate) else Gate.parse(i) for i in items if i != "none")


def _scorers(text: str | Sequence[str]) -> tuple[str, ...]:
    """parse_scorers, with 'none' (the default) for no scorer."""
    return () if text in ("none", "") else parse_scorers(text)


@dataclass(frozen=True)
class GateConfig:
    """Scoring while generating (docs/quality.md). `score`: the scorers to run on every turn
    (synth.quality), stored in its metadata; `gate`: thresholds a turn must meet (their scorers
    run too); `takes`: syntheses per turn at most, the best kept; `gate_fail`: what a turn that
    never passes does to its dialog; `score_sample`: score (and gate) a deterministic fraction of
    the turns (by conversation and turn, with the pipeline's seed)."""

    score: tuple[str, ...] = option(
        (),
        parse=_scorers,
        text=lambda names: ",".join(names) or "none",
        metavar="NAMES",
        help="score every turn while generating and store the scores in its metadata (quality): "
        "intelligibility, dnsmos, speaker, signal (comma-separated), or all; see synth score",
    )
    gate: tuple[Gate, ...] = option(
        (),
        repeat=True,
        parse=parse_gates,
        text=lambda gates: ",".join(map(str, gates)) or "none",
        metavar="SCORE<=X",
        help="a threshold every turn must meet, e.g. wer<=0.2 or dnsmos_ovrl>=2.5 (repeatable; its scorer "
        "runs); a failing turn is synthesized again (--takes) and rejects its dialog if it never passes",
    )
    takes: int = option(
        1,
        metavar="N",
        help="syntheses per turn at most when it fails a --gate: each retake at another speaking rate and "
        "noise drawn from the seed; the best take is kept (the first to pass, else the fewest gates failed)",
    )
    gate_fail: str = option(
        "reject",
        choices=GATE_FAIL,
        help="a turn that fails a --gate after all its takes: reject its dialog (failures.jsonl, with the "
        "scores) or keep it, flagged (quality.gate_failed)",
    )
    score_sample: float = option(
        1.0,
        metavar="FRACTION",
        help="score and gate only this fraction of the turns (a deterministic sample by conversation and "
        "turn, with --seed), when scoring every turn costs too much",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "score", _scorers(self.score))
        object.__setattr__(self, "gate", parse_gates(self.gate))
        if self.takes < 1:
            raise ConfigError("takes", "must be at least 1", self.takes)
        if self.takes > 1 and not self.gate:
            raise ConfigError("takes", "retakes need a --gate that says which take is good", self.takes)
        if self.gate_fail not in GATE_FAIL:
            raise ConfigError("gate_fail", f"choose {' or '.join(GATE_FAIL)}", self.gate_fail)
        if not 0.0 < self.score_sample <= 1.0:
            raise ConfigError("score_sample", "must be in (0, 1]", self.score_sample)

    @property
    def scorers(self) -> tuple[str, ...]:
        """Every scorer to run: those asked for and those the gates need, in the canonical order."""
        return parse_scorers(list(self.score) + [g.scorer() for g in self.gate])

    @property
    def enabled(self) -> bool:
        return bool(self.scorers)


def take_voice(voice: Voice, seed: int, conversation_id: str, key: str, take: int) -> Voice:
    """The voice a take is said in: the voice itself for take 0, else at a speaking rate drawn
    from (seed, conversation, turn, take) through the voice's rate parameter."""
    if take == 0:
        return voice
    rate = next((p for p in RATE_PARAMS if p in voice.params), None)
    if rate is None:
        return voice
    rng = conversation_rng(seed, conversation_id, f"take:{key}:{take}")
    factor = math.exp(rng.uniform(-RATE_SPREAD, RATE_SPREAD))
    value = float(voice.params[rate] or 1.0)
    return replace(voice, params={**voice.params, rate: round(value * factor, 6)})


def can_vary(voice: Voice, deterministic: bool) -> bool:
    """Whether another take can sound different: the engine samples noise, or the voice has a
    rate to draw."""
    return not deterministic or any(p in voice.params for p in RATE_PARAMS)


@dataclass
class Verdict:
    """A take judged: its record (the quality block, or the ASR check's), the gates it fails."""

    record: dict[str, Any]
    failed: list[str] = field(default_factory=list)
    rank: tuple[float, ...] = ()  # smaller is better, among takes that fail
    parts: dict[str, Verdict] = field(default_factory=dict)  # the judges it combines

    @property
    def passed(self) -> bool:
        return not self.failed


def best_take(
    first: Spoken,
    retake: Callable[[int], Spoken],
    judge: Callable[[Spoken], Verdict],
    takes: int,
) -> tuple[Spoken, Verdict, int, int]:
    """Judge `first`, and while it fails take again (`retake(k)` for k = 1, 2, ...) up to `takes`
    syntheses; (the best take, its verdict, the takes made, the best's number)."""
    best: tuple[tuple[Any, ...], Spoken, Verdict, int] | None = None
    spoken, made = first, 0
    while True:
        verdict = judge(spoken)
        order = (len(verdict.failed), *verdict.rank, made)
        if best is None or order < best[0]:
            best = (order, spoken, verdict, made)
        made += 1
        if verdict.passed or made >= takes:
            break
        spoken = retake(made)
    _, spoken, verdict, number = best
    return spoken, verdict, made, number


class Judge:
    """The scorers and the gates; safe to share between threads (each scorer runs one batch at a
    time)."""

    def __init__(self, config: GateConfig, scorers: Sequence[Scorer]):
        self.config = config
        self.scorers = list(scorers)
        self._locks = {s.name: threading.Lock() for s in self.scorers}
        self.versions = {s.name: s.version for s in self.scorers}

    def __call__(self, turn: TurnAudio) -> Verdict:
        row: dict[str, Any] = {}
        for scorer in self.scorers:
            with self._locks[scorer.name]:
                (got,) = scorer.score([turn])
            row.update(got)
        block = quality_block(self.versions, row)
        failed = [str(g) for g in self.config.gate if not g.passes(block)]
        return Verdict(block, failed, tuple(_badness(g, block) for g in self.config.gate))

    def summary(self, turns: Sequence[SynthesizedTurn]) -> dict[str, Any]:
        """The conversation's `quality_gates` record: the settings, the scorers' versions, the
        turns scored, retaken and flagged (those that kept a failing take)."""
        blocks = [(t.turn_id, t.extra.get("quality")) for t in turns]
        scored = [(i, b) for i, b in blocks if isinstance(b, dict)]
        c = self.config
        return {
            "scorers": dict(self.versions),
            "gates": [str(g) for g in c.gate],
            "takes": c.takes,
            "gate_fail": c.gate_fail,
            "score_sample": c.score_sample,
            "turns_scored": len(scored),
            "retaken_turns": sum(1 for _, b in scored if int(b.get("takes", 1)) > 1),
            "flagged_turns": [i for i, b in scored if b.get("gate_failed")],
        }


def _badness(gate: Gate, block: Mapping[str, Any]) -> float:
    """A gate's score oriented so that smaller is better (a missing score: worst)."""
    value = block.get(gate.key)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return math.inf
    return float(value) if higher_is_worse(gate.key) else -float(value)


def gate_failed(verdict: Verdict, made: int, where: str, field_: str, conversation_id: str) -> GateFailed:
    """The rejection of a dialog whose turn never passed: the gates, the kept take's scores."""
    scores = {k: v for k, v in verdict.record.items() if k != "scorers"}
    shown = ", ".join(f"{k} {v}" for k, v in scores.items() if k in KEYS and k not in TEXT_KEYS)
    message = f"failed the quality gate(s) {', '.join(verdict.failed)} in all {made} take(s) (best: {shown})"
    return GateFailed(message, where, field_, conversation_id, scores=scores, gates=verdict.failed)
