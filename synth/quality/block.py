"""Scores into the stored `quality` block of a turn (docs/dataset-format.md): flat, the scorers
that ran named with their versions, then their keys in a fixed order, only the keys of the
scorers that ran. A block merges into the one a turn already has: a scorer run again replaces
its own keys, the other scorers' stay (and keys others add, e.g. `takes`, are kept)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .base import KEYS, SCORER_KEYS, Score, Scorer, TurnAudio


def quality_block(
    versions: Mapping[str, str], scores: Mapping[str, Any], old: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The block of a turn: `versions` (scorer name -> version) of the scorers that ran,
    `scores` their keys' values; `old`: the turn's block before, merged under the new one."""
    old = dict(old or {})
    for name in versions:  # a scorer run again: its old keys go (one it leaves out now too)
        for key in SCORER_KEYS.get(name, ()):
            old.pop(key, None)
    scorers = {**(old.pop("scorers", None) or {}), **versions}
    merged = {**old, **scores}
    out: dict[str, Any] = {"scorers": {n: scorers[n] for n in sorted(scorers, key=_order)}}
    out.update({k: merged[k] for k in KEYS if k in merged})
    out.update({k: v for k, v in merged.items() if k not in out})
    return out


def _order(name: str) -> tuple[int, str]:
    names = list(SCORER_KEYS)
    return (names.index(name) if name in names else len(names), name)


def stale(scorers: Sequence[Scorer], block: Mapping[str, Any] | None) -> list[Scorer]:
    """The scorers whose scores a block lacks, or has from another version."""
    ran = (block or {}).get("scorers") or {}
    return [s for s in scorers if ran.get(s.name) != s.version]


def score_turns(scorers: Sequence[Scorer], turns: Sequence[TurnAudio]) -> list[dict[str, Any]]:
    """Every scorer over the turns; one fresh block per turn (quality_block without `old`)."""
    rows: list[Score] = [{} for _ in turns]
    for scorer in scorers:
        for row, got in zip(rows, scorer.score(turns), strict=True):
            row.update(got)
    versions = {s.name: s.version for s in scorers}
    return [quality_block(versions, row) for row in rows]
