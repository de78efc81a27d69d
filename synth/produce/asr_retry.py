"""The ASR retry: each synthesized turn is transcribed; while its word error rate is over the
threshold it is synthesized again (at most `retries` times, and only when the engine samples
noise, since a deterministic engine would say it the same way), and the best rendition is kept.
What happened is recorded per turn and per conversation (metadata `asr_check`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..asr.wer import wer
from ..domain import SynthesizedTurn, Voice
from .render import Spoken, TurnRenderer

if TYPE_CHECKING:
    from ..asr.recognizer import AsrCheck


def checked(
    check: AsrCheck, renderer: TurnRenderer, spoken: Spoken, text: str, voice: Voice
) -> tuple[Spoken, dict[str, Any]]:
    """The best rendition of `text` and the turn's `asr_check` record."""
    noisy = not renderer.engine.deterministic
    best: tuple[float, Spoken, str] | None = None
    attempts = 0
    while True:
        attempts += 1
        hyp = check.recognizer.transcribe(spoken.audio).text
        score = wer(text, hyp)
        if best is None or score < best[0]:
            best = (score, spoken, hyp)
        if score <= check.threshold or attempts > check.retries or not noisy:
            break
        spoken = renderer.finish(renderer.pieces([(text, voice)])[0])
    score, spoken, hyp = best
    return (
        spoken,
        {
            "wer": round(score, 4),
            "hypothesis": hyp,
            "attempts": attempts,
            "passed": score <= check.threshold,
            **check.recognizer.describe(),
        },
    )


def summary(check: AsrCheck, turns: Sequence[SynthesizedTurn]) -> dict[str, Any]:
    """The conversation's `asr_check` record: the recognizer, the threshold, the mean word error
    rate and the turns still over it."""
    wers = [t.extra["asr_check"]["wer"] for t in turns if "asr_check" in t.extra]
    return {
        **check.recognizer.describe(),
        "threshold": check.threshold,
        "mean_wer": round(sum(wers) / len(wers), 4) if wers else None,
        "failed_turns": [t.turn_id for t in turns if not t.extra.get("asr_check", {}).get("passed", True)],
    }
