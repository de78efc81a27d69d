"""Curriculum splits: one manifest per context-length stage, holding the conversations whose
`total_tokens` fit that stage (so stage 16k includes everything of stage 8k)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .dataset import DatasetError, iter_manifest
from .errors import ConfigError
from .records import MANIFEST

SPLITS_DIR = "splits"


@dataclass(frozen=True)
class StageSummary:
    stage: int
    path: Path
    conversations: int
    hours: float
    total_tokens: int


def parse_stages(text: str) -> list[int]:
    """'8192,16384' or '8k,16k,32k,64k' -> [8192, 16384, ...]; strictly increasing, positive."""
    stages = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*([kK]?)\s*", part)
        if not m or int(m.group(1)) <= 0:
            raise ConfigError("stages", f"{part.strip()!r} is not a positive token count")
        stages.append(int(m.group(1)) * (1024 if m.group(2) else 1))
    for a, b in zip(stages, stages[1:]):
        if b <= a:
            raise ConfigError("stages", f"must be strictly increasing: {b} comes after {a}")
    return stages


def write_splits(
    root: Path | str,
    stages: list[int],
    out_dir: Path | None = None,
) -> tuple[list[StageSummary], int]:
    """Write `<root>/splits/stage_<N>.jsonl` for each stage; return the summaries and the number
    of conversations longer than the last stage (in no split)."""
    root = Path(root)
    out_dir = out_dir or root / SPLITS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = {s: out_dir / f".stage_{s}.jsonl.tmp" for s in stages}
    handles = {s: open(p, "w", encoding="utf-8") for s, p in tmp.items()}
    counts = {s: [0, 0.0, 0] for s in stages}
    too_long = 0
    try:
        for n, entry in iter_manifest(root / MANIFEST):
            tokens = entry.total_tokens
            if not isinstance(tokens, int):
                raise DatasetError(f"{root / MANIFEST} line {n}: no total_tokens (run `synth tokenize`)")
            fits = [s for s in stages if tokens <= s]
            too_long += not fits
            line = entry.to_line()
            for s in fits:
                handles[s].write(line)
                c = counts[s]
                c[0] += 1
                c[1] += float(entry.speech_duration_sec or entry.duration_sec) / 3600
                c[2] += tokens
    finally:
        for h in handles.values():
            h.close()
    summaries = []
    for s in stages:
        final = out_dir / f"stage_{s}.jsonl"
        os.replace(tmp[s], final)
        summaries.append(StageSummary(s, final, counts[s][0], counts[s][1], counts[s][2]))
    return summaries, too_long
