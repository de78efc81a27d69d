"""What a dataset's timelines look like, measured from its metadata: how often speaker changes
overlap and how long the gaps are, and how many backchannels listeners made per opportunity (the
rule in synth.produce.backchannels), to compare with what the run was configured to draw."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from ..dataset.reader import open_dataset
from ..produce import backchannels


def timeline_stats(root: Path | str) -> dict[str, Any]:
    """A dataset's gaps and overlaps at speaker changes and its backchannels per opportunity, from
    its metadata."""
    offsets: list[float] = []
    opportunities = events = 0
    for ref in open_dataset(root):
        meta = ref.metadata()
        end, previous = 0.0, None
        for turn in meta.turns:
            if previous is not None and turn.speaker != previous:
                offsets.append(turn.start_time - end)
            end, previous = max(end, turn.end_time), turn.speaker
            opportunities += backchannels.opportunities(turn.duration_sec)
        events += sum(e.kind == "backchannel" for e in meta.events)
    return {
        "speaker_changes": len(offsets),
        "overlap_share": round(sum(o < 0 for o in offsets) / len(offsets), 4) if offsets else None,
        "offset_median_sec": round(statistics.median(offsets), 3) if offsets else None,
        "offset_mean_sec": round(statistics.mean(offsets), 3) if offsets else None,
        "backchannels": events,
        "backchannel_opportunities": opportunities,
        "backchannels_per_opportunity": round(events / opportunities, 4) if opportunities else None,
    }
