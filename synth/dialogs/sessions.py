"""Sessions: consecutive dialogs of a source joined into one long conversation, for models
trained on a curriculum of context lengths (8k, 16k, 32k, 64k tokens). A session is filled to a
token target (`tokens`), a duration target (`minutes`), or a target drawn per session from a mix
over curriculum stages (`mix`, e.g. 8k:0.4,16k:0.3,32k:0.2,64k:0.1: a session of stage 16k aims
inside the band 8k-16k). Everything is deterministic for a seed and the source's order, so a
rerun (resume) or a shard makes the same sessions.

Sizes are estimated before synthesis: text tokens exactly (the real sample builder on the real
texts) and speech from the text length (ESTIMATED_CHARS_PER_SEC, measured on the embedded voice);
the dataset's `total_tokens` are then counted on the real audio, and `synth splits --bands` files
each session under the stage it really fits.

Every part keeps the session's one cast: its speakers are mapped by role (order of first
appearance) onto the session's speakers A, B, C..., so the first speaker of every part has one
voice from the session's first turn to its last. A pause (`pause_sec`) separates the parts, which
are listed in metadata (`segments`). A bad dialog (a DialogError from the source) is passed on
to be reported, and the session goes on without it."""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ..dataset.records import TurnRecord
from ..domain import Dialog, Segment, Source
from ..errors import ConfigError, DialogError
from ..ids import InvalidConversationId, check_conversation_id
from .build import DialogLimits, build_dialog

ESTIMATED_CHARS_PER_SEC = 18.0  # the embedded voice: 17-20 characters a second, measured


@dataclass(frozen=True)
class SessionConfig:
    tokens: int | None = None
    minutes: float | None = None
    mix: tuple[tuple[int, float], ...] = ()
    pause_sec: float = 1.5
    fill: float = 0.75  # with a mix: aim at lower + fill * (stage - lower) of the stage's band

    def __post_init__(self) -> None:
        if sum(x is not None and x != () for x in (self.tokens, self.minutes, self.mix or None)) != 1:
            raise ConfigError(
                "session", "give exactly one of session tokens, session minutes or a session mix"
            )
        if self.tokens is not None and self.tokens <= 0:
            raise ConfigError("session_tokens", "must be positive", self.tokens)
        if self.minutes is not None and self.minutes <= 0:
            raise ConfigError("session_minutes", "must be positive", self.minutes)
        if self.pause_sec < 0:
            raise ConfigError("session_pause", "must not be negative", self.pause_sec)

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

    def targets(self, seed: int) -> Iterator[tuple[str, float]]:
        """('tokens' | 'seconds', target) for each session in turn, from a generator of the seed."""
        rng = random.Random(f"{seed}:sessions")
        while True:
            if self.tokens is not None:
                yield "tokens", float(self.tokens)
            elif self.minutes is not None:
                yield "seconds", self.minutes * 60
            else:
                stages = [s for s, _ in self.mix]
                stage = rng.choices(stages, weights=[w for _, w in self.mix])[0]
                lower = ([0, *stages])[stages.index(stage)]
                yield "tokens", lower + self.fill * (stage - lower)


def estimated_seconds(dialog: Dialog) -> float:
    return sum(len(t.text) / ESTIMATED_CHARS_PER_SEC + 0.2 for t in dialog.turns)


def token_estimator(builder: object | None) -> Callable[[Dialog], float]:
    """Estimated total_tokens of a dialog: the sample builder's own count (its tokenizer, format,
    system prompt and speech profile) on estimated durations."""

    def estimate(dialog: Dialog) -> float:
        if builder is None:
            return estimated_seconds(dialog) * 10
        speakers = dialog.speakers
        turns = [
            TurnRecord(
                turn_id=i,
                speaker=t.speaker,
                speaker_id=speakers.index(t.speaker),
                text=t.text,
                audio_file="",
                transcript_file="",
                start_time=0.0,
                end_time=0.0,
                duration_sec=len(t.text) / ESTIMATED_CHARS_PER_SEC + 0.2,
            )
            for i, t in enumerate(dialog.turns)
        ]
        return float(builder.build(dialog.conversation_id, turns)[1]["total_tokens"])  # type: ignore[attr-defined]

    return estimate


def make_sessions(
    items: Iterable[Dialog | DialogError],
    config: SessionConfig,
    estimate_tokens: Callable[[Dialog], float],
    seed: int = 0,
    limits: DialogLimits = DialogLimits(),
) -> Iterator[Dialog | DialogError]:
    """Join consecutive dialogs into sessions that reach their targets; the last session holds
    what is left. DialogErrors pass through (to be reported) between sessions' parts."""
    targets = config.targets(seed)
    kind, target = next(targets)
    parts: list[Dialog] = []
    size = 0.0
    for item in items:
        if isinstance(item, DialogError):
            yield item
            continue
        parts.append(item)
        size += estimate_tokens(item) if kind == "tokens" else estimated_seconds(item)
        if size >= target:
            yield join(parts, config.pause_sec, limits)
            parts, size = [], 0.0
            kind, target = next(targets)
    if parts:
        yield join(parts, config.pause_sec, limits)


def join(parts: list[Dialog], pause_sec: float, limits: DialogLimits = DialogLimits()) -> Dialog:
    """One session from its parts: speakers mapped by role onto A, B, C..., one cast."""
    first = parts[0]
    cid = _session_id(first.conversation_id)
    pairs: list[tuple[str, str]] = []
    voices: dict[str, str] = {}
    segments = []
    for part in parts:
        role = {speaker: _label(k) for k, speaker in enumerate(part.speakers)}
        start = len(pairs)
        pairs += [(role[t.speaker], t.text) for t in part.turns]
        for speaker, voice in part.voices.items():
            if speaker in role:
                voices.setdefault(role[speaker], voice)
        segments.append(Segment(part.source, start, len(pairs) - 1))
    where = Source(**{**first.source.to_dict(), "original_id": cid})
    session = build_dialog(pairs, cid, where, voices, limits, clean=False)
    return Dialog(
        session.conversation_id, session.turns, session.source, session.voices, tuple(segments), pause_sec
    )


def _label(k: int) -> str:
    return chr(ord("A") + k) if k < 26 else f"S{k}"


def _session_id(first_id: str) -> str:
    cid = f"session_{first_id}"
    try:
        return check_conversation_id(cid)
    except InvalidConversationId:  # too long with the prefix
        return f"session_{hashlib.sha256(first_id.encode()).hexdigest()[:24]}"
