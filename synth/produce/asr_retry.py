"""The ASR retry: each synthesized turn is transcribed; while its word error rate is over the
threshold it is synthesized again (at most `retries` times, and only when the engine samples
noise, since a deterministic engine would say it the same way; each retry with a noise seed of its
own, drawn from the conversation and turn), and the best rendition is kept.
The loop is the quality gates' best-of-N (synth.produce.gates.best_take) with one judge, the word
error rate. What happened is recorded per turn and per conversation (metadata `asr_check`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..asr.wer import wer
from ..domain import SynthesizedTurn, Voice
from .gates import Verdict, best_take
from .render import Spoken, TurnRenderer

if TYPE_CHECKING:
    from ..asr.recognizer import AsrCheck


def judge(check: AsrCheck, spoken: Spoken, text: str) -> Verdict:
    """One rendition judged: its word error rate against the threshold."""
    hyp = check.recognizer.transcribe(spoken.audio).text
    score = wer(text, hyp)
    failed = [] if score <= check.threshold else [f"asr_wer<={check.threshold:g}"]
    return Verdict({"wer": round(score, 4), "hypothesis": hyp}, failed, (score,))


def record(check: AsrCheck, verdict: Verdict, attempts: int) -> dict[str, Any]:
    """A turn's `asr_check` record."""
    return {
        "wer": verdict.record["wer"],
        "hypothesis": verdict.record["hypothesis"],
        "attempts": attempts,
        "passed": verdict.passed,
        **check.recognizer.describe(),
    }


def checked(
    check: AsrCheck,
    renderer: TurnRenderer,
    spoken: Spoken,
    text: str,
    voice: Voice,
    take_seed: Callable[[int], int | None] = lambda take: None,
) -> tuple[Spoken, dict[str, Any]]:
    """The best rendition of `text` and the turn's `asr_check` record; retry k draws its noise
    from `take_seed(k)` (a seed of its own, or the engine would say it the same way again)."""
    takes = check.retries + 1 if not renderer.engine.deterministic else 1

    def retake(take: int) -> Spoken:
        return renderer.finish(renderer.pieces([(text, voice)], None, [take_seed(take)])[0])

    spoken, verdict, made, _ = best_take(spoken, retake, lambda s: judge(check, s, text), takes)
    return spoken, record(check, verdict, made)


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
