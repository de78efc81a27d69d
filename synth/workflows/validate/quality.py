"""Quality scores (docs/dataset-format.md): a turn's `quality` block names the scorers that ran
with their versions and holds their scores; a manifest line's `quality` summarizes them per
conversation ({key: {min, mean, max}} and `turns_scored`), which curriculum filters read. A
score that is not a finite number would pass every gate and filter silently: named here."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ...dataset.records import METADATA_FILE
from .problems import Place, Problem

if TYPE_CHECKING:
    from .conversation import Conversation

# the block's keys that are not scores, and what each must be
NOT_SCORES = {
    "asr_text": (lambda v: isinstance(v, str), "a string (what the recognizer heard)"),
    "gate_failed": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of names"),
    "takes": (lambda v: _integer(v) and v >= 1, "a whole number of takes, at least 1"),
}
# the summary's mean is rounded (4 decimals) and its min and max are not
SUMMARY_TOLERANCE = 1e-4


def check_quality(conv: Conversation) -> list[Problem]:
    """Every turn's `quality` block, where it has one (`check_block`)."""
    problems = []
    for i, turn in enumerate(conv.meta["turns"]):
        if isinstance(turn, dict) and "quality" in turn:
            problems += check_block(turn["quality"], conv.place(METADATA_FILE, f"turns[{i}]", turn=i))
    return problems


def check_block(block: Any, at: Place) -> list[Problem]:
    """A turn's `quality`: an object whose `scorers` maps each scorer's name to its version and
    whose other keys are finite numbers (but asr_text, gate_failed and takes: NOT_SCORES)."""
    if not isinstance(block, dict):
        return [at.error(f"quality is {_shown(block)}, not an object", "quality")]
    problems = []
    scorers = block.get("scorers")
    if not isinstance(scorers, dict):
        problems.append(
            at.error(
                f"quality.scorers is {_shown_in(block, 'scorers')}: it must name each scorer that ran with its "
                "version",
                "quality.scorers",
            )
        )
    else:
        for name, version in scorers.items():
            if not isinstance(version, str):
                problems.append(
                    at.error(
                        f"quality.scorers.{name} is {_shown(version)}, not a version string",
                        f"quality.scorers.{name}",
                    )
                )
    for key, value in block.items():
        if key == "scorers":
            continue
        test, what = NOT_SCORES.get(key, (_finite, "a finite number"))
        if not test(value):
            problems.append(at.error(f"quality.{key} is {_shown(value)}, not {what}", f"quality.{key}"))
    return problems


COUNTS = ("turns_scored", "turns_flagged")  # the summary's counts; its other keys are scores


def check_summary(summary: Any, at: Place) -> list[Problem]:
    """A manifest line's `quality`: {key: {"min", "mean", "max"}} of finite numbers in that order
    (min <= mean <= max), `turns_scored`, a whole number, and `turns_flagged` where present."""
    if not isinstance(summary, dict):
        return [at.error(f"quality is {_shown(summary)}, not an object", "quality")]
    problems = []
    for key in COUNTS:
        count = summary.get(key)
        if (key in summary or key == "turns_scored") and not (
            isinstance(count, int) and not isinstance(count, bool) and count >= 0
        ):
            problems.append(
                at.error(
                    f"quality.{key} is {_shown_in(summary, key)}, not a number of turns", f"quality.{key}"
                )
            )
    for key, stats in summary.items():
        if key in COUNTS:
            continue
        field = f"quality.{key}"
        if not isinstance(stats, dict):
            problems.append(
                at.error(f"{field} is {_shown(stats)}, not an object of min, mean and max", field)
            )
            continue
        bad = [name for name in ("min", "mean", "max") if not _finite(stats.get(name))]
        if bad:
            got = ", ".join(f"{name} {_shown_in(stats, name)}" for name in bad)
            problems.append(at.error(f"{field}: {got}: not a finite number", field))
            continue
        low, mean, high = stats["min"], stats["mean"], stats["max"]
        if not low - SUMMARY_TOLERANCE <= mean <= high + SUMMARY_TOLERANCE or low > high:
            problems.append(at.error(f"{field}: min {low}, mean {mean}, max {high} are not in order", field))
    return problems


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shown_in(obj: dict[str, Any], key: str) -> str:
    return _shown(obj[key]) if key in obj else "missing"


def _shown(value: Any) -> str:
    """A value as a message shows it: short, null as JSON says it."""
    text = "null" if value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
