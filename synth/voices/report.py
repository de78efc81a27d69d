"""How distinct the voices are: of a catalog (every voice's nearest neighbour, the spread of
pairwise distances) and of a dataset (how many distinct speakers it has, by model, and how far
apart the speakers of each conversation were cast)."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from ..dataset.reader import open_dataset
from ..domain import Voice
from ..produce.casting import MIN_MEASURED_DISTANCE


def catalog_report(
    voices: Sequence[Voice],
    distance: Callable[[Voice, Voice], float],
    threshold: float = MIN_MEASURED_DISTANCE,
) -> dict[str, Any]:
    """Each voice's nearest neighbour and the spread of the pairwise distances of a catalog, with
    how many pairs are `threshold` or more apart."""
    rows, pairs = [], []
    for i, a in enumerate(voices):
        best: tuple[float, str] | None = None
        for j, b in enumerate(voices):
            if i == j:
                continue
            d = distance(a, b)
            if j > i:
                pairs.append(d)
            if best is None or d < best[0]:
                best = (d, b.id)
        if best is not None:
            rows.append({"id": a.id, "nearest": best[1], "distance": round(best[0], 4)})
    summary = {
        "voices": len(voices),
        "pairs": len(pairs),
        "min": round(min(pairs), 4) if pairs else 0.0,
        "median": round(statistics.median(pairs), 4) if pairs else 0.0,
        "threshold": threshold,
        "apart": sum(d >= threshold for d in pairs),
    }
    return {"voices": rows, "summary": summary}


def dataset_voice_stats(root: str) -> dict[str, Any]:
    """Distinct speakers (voice ids with their model) of a dataset, per model and engine."""
    voices: dict[tuple[str, str], str] = {}
    conversations = 0
    for ref in open_dataset(root):
        meta = ref.metadata()
        conversations += 1
        for v in meta.voices.values():
            voices[(str(v.get("model", "")), str(v.get("id", "")))] = str(v.get("engine", ""))
    by_model = Counter(model for model, _ in voices)
    return {
        "conversations": conversations,
        "distinct_voices": len(voices),
        "by_model": dict(by_model.most_common()),
        "by_engine": dict(Counter(voices.values()).most_common()),
    }
