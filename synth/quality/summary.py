"""Scores summarized: per conversation for its manifest line (`conversation_summary`, the one
function the writer, `synth score` and the gates share; it lives beside the records, which derive
a manifest line from the metadata alone), and across a dataset for `synth validate --stats`
(`dataset_stats`, exact, from every turn's block)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..dataset.reader import open_dataset
from ..dataset.records import quality_summary as conversation_summary
from .base import KEYS, higher_is_worse

__all__ = ["conversation_summary", "dataset_stats", "format_stats"]


def dataset_stats(root: Path | str) -> dict[str, Any] | None:
    """Across the dataset: how many turns were scored, by which scorer versions, and per score
    its count, mean, min, max and the worst decile's bound (p90 where higher is worse, p10
    otherwise); None when no turn carries scores."""
    turns = scored = 0
    versions: dict[str, set[str]] = {}
    values: dict[str, list[float]] = {}
    for ref in open_dataset(root):
        for turn in ref.metadata().turns:
            turns += 1
            block = turn.extra.get("quality")
            if not isinstance(block, dict) or not block.get("scorers"):
                continue
            scored += 1
            for name, version in block["scorers"].items():
                versions.setdefault(name, set()).add(str(version))
            for key, value in block.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    values.setdefault(key, []).append(float(value))
    if not scored:
        return None
    order = [k for k in KEYS if k in values] + sorted(k for k in values if k not in KEYS)
    scores = {}
    for key in order:
        v = np.asarray(values[key])
        worse = higher_is_worse(key)
        scores[key] = {
            "n": int(v.size),
            "mean": round(float(v.mean()), 4),
            "min": round(float(v.min()), 4),
            "max": round(float(v.max()), 4),
            "worst_decile": round(float(np.percentile(v, 90 if worse else 10)), 4),
            "higher_is_worse": worse,
        }
    return {
        "turns": turns,
        "turns_scored": scored,
        "scorers": {k: sorted(v) for k, v in versions.items()},
        "scores": scores,
    }


def format_stats(stats: dict[str, Any]) -> list[str]:
    """`synth validate --stats`'s lines for the scores."""
    scorers = ", ".join(f"{k} {'/'.join(v)}" for k, v in stats["scorers"].items())
    lines = [f"quality: {stats['turns_scored']} of {stats['turns']} turns scored ({scorers})"]
    for key, s in stats["scores"].items():
        decile = "p90" if s["higher_is_worse"] else "p10"
        lines.append(
            f"  {key:<18} mean {s['mean']:>9.4g}  min {s['min']:>9.4g}  max {s['max']:>9.4g}  "
            f"{decile} {s['worst_decile']:>9.4g}  ({s['n']} turns)"
        )
    return lines
