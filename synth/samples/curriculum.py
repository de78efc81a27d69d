"""Curriculum splits: one manifest per context-length stage. Cumulative stages
(`stage_<N>.jsonl`) hold every conversation whose `total_tokens` fit the stage (stage 16k
includes everything of stage 8k); bands (`band_<N>.jsonl`, `--bands`) put each conversation in
exactly one stage, the smallest it fits (8k < tokens <= 16k for band 16k).

A `QualityFilter` (`--min-quality dnsmos_ovrl=2.5 --max-quality wer=0.2`) leaves out every
conversation whose worst turn fails a bound, read from its manifest line's quality summary (the
min of a score for --min-quality, its max for --max-quality); a conversation without that score
is left out too (score it first: `synth score`).

Writing them inside the dataset (the default `<dataset>/splits/`) is one of the tools that may run
beside writers (it lists the conversations finished when it starts), never beside a rewrite:
`synth tokenize` rewrites the splits it finds there with the new token counts."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..dataset.reader import iter_manifest
from ..dataset.records import MANIFEST, ManifestEntry
from ..dataset.writer import READ, WRITE, using
from ..errors import ConfigError, DatasetError
from ..quality.base import KEYS, TEXT_KEYS

SPLITS_DIR = "splits"


HISTOGRAM_BINS = 8


@dataclass(frozen=True)
class StageSummary:
    """One split written: its stage (and lower bound for a band), file, size and token histogram."""

    stage: int
    path: Path
    conversations: int
    hours: float
    total_tokens: int
    lower: int = 0  # exclusive lower bound of total_tokens (bands), 0 for cumulative stages
    histogram: tuple[int, ...] = ()  # conversations per equal-width bin of (lower, stage]

    def format_histogram(self, width: int = 40) -> list[str]:
        """The histogram as text lines: bin range, count and a bar."""
        top = max(self.histogram, default=0)
        step = (self.stage - self.lower) / len(self.histogram) if self.histogram else 0
        lines = []
        for i, n in enumerate(self.histogram):
            lo, hi = self.lower + step * i, self.lower + step * (i + 1)
            bar = "#" * (round(width * n / top) if top else 0)
            lines.append(f"    {lo:>8.0f} - {hi:>8.0f} tokens {n:6d} {bar}")
        return lines


@dataclass
class QualityFilter:
    """Bounds on the per-conversation quality summary: `minimum[key]` the lowest allowed worst
    (min) value, `maximum[key]` the highest allowed worst (max) value. `dropped` collects the
    conversations left out, with the reason."""

    minimum: dict[str, float] = field(default_factory=dict)
    maximum: dict[str, float] = field(default_factory=dict)
    dropped: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.minimum or self.maximum)

    def reason(self, entry: ManifestEntry) -> str | None:
        """Why the conversation fails the bounds, or None when it passes."""
        summary = entry.quality or {}
        for bounds, side, fails in ((self.minimum, "min", float.__lt__), (self.maximum, "max", float.__gt__)):
            for key, bound in bounds.items():
                value = (summary.get(key) or {}).get(side)
                if not isinstance(value, (int, float)):
                    return f"no {key} score"
                if fails(float(value), bound):
                    return f"{key} {side} {value:g} {'<' if side == 'min' else '>'} {bound:g}"
        return None

    def keeps(self, entry: ManifestEntry) -> bool:
        why = self.reason(entry)
        if why is not None:
            self.dropped.append((entry.conversation_id, why))
        return why is None


def parse_quality_bounds(values: Sequence[str] | None, option: str) -> dict[str, float]:
    """['dnsmos_ovrl=2.5', 'wer=0.2'] (or one comma-separated text) -> {key: bound}; a
    ConfigError naming `option` for an unknown score or a bound that is not a number."""
    out: dict[str, float] = {}
    for text in values or ():
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, number = part.partition("=")
            key = key.strip()
            if not sep or key not in KEYS or key in TEXT_KEYS:
                numeric = ", ".join(k for k in KEYS if k not in TEXT_KEYS)
                raise ConfigError(option, f"{part!r}: give SCORE=NUMBER, a score one of {numeric}")
            try:
                out[key] = float(number)
            except ValueError:
                raise ConfigError(option, f"{part!r}: {number.strip()!r} is not a number") from None
    return out


def split_path(out_dir: Path, stage: int, bands: bool) -> Path:
    """Where a stage's (or band's) split manifest goes."""
    return out_dir / f"{'band' if bands else 'stage'}_{stage}.jsonl"


def existing_splits(out_dir: Path) -> list[tuple[Path, list[int], bool]]:
    """The split manifests in a folder, each with the stages of its kind there and whether they
    are bands (a band's lower bound is the stage before it)."""
    found: dict[bool, dict[int, Path]] = {False: {}, True: {}}
    if out_dir.is_dir() and not out_dir.is_symlink():
        for path in out_dir.iterdir():
            m = re.fullmatch(r"(stage|band)_(\d+)\.jsonl", path.name)
            if m and path.is_file() and not path.is_symlink():
                found[m.group(1) == "band"][int(m.group(2))] = path
    return [(path, sorted(kind), bands) for bands, kind in found.items() for path in kind.values()]


def split_lines(entries: Iterable[ManifestEntry], stages: list[int], bands: bool = False) -> dict[str, str]:
    """File name -> the lines of each split, as `write_splits` writes them (entries without
    total_tokens are in none)."""
    lower = {s: (([0] + stages)[i] if bands else 0) for i, s in enumerate(stages)}
    out: dict[str, list[str]] = {split_path(Path(), s, bands).name: [] for s in stages}
    for entry in entries:
        tokens = entry.total_tokens
        if not isinstance(tokens, int):
            continue
        for s in stages:
            if lower[s] < tokens <= s if bands else tokens <= s:
                out[split_path(Path(), s, bands).name].append(entry.to_line())
    return {name: "".join(lines) for name, lines in out.items()}


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
    bands: bool = False,
    quality: QualityFilter | None = None,
) -> tuple[list[StageSummary], int]:
    """Write a manifest per stage into `<root>/splits/` (cumulative `stage_<N>.jsonl`, or with
    `bands` `band_<N>.jsonl`, each conversation in exactly one); return the summaries (counts,
    hours, tokens and a histogram of total_tokens) and the number of conversations longer than
    the last stage (in no split). `quality`: leave out the conversations that fail its bounds
    (listed in its `dropped`)."""
    root = Path(root)
    inside = out_dir is None or Path(os.path.realpath(out_dir)).is_relative_to(os.path.realpath(root))
    with using(root, WRITE if inside else READ, "synth splits"):
        return _write_splits(root, stages, out_dir or root / SPLITS_DIR, bands, quality)


def _write_splits(
    root: Path, stages: list[int], out_dir: Path, bands: bool, quality: QualityFilter | None = None
) -> tuple[list[StageSummary], int]:
    out_dir.mkdir(parents=True, exist_ok=True)
    lower = {s: (([0] + stages)[i] if bands else 0) for i, s in enumerate(stages)}
    final = {s: split_path(out_dir, s, bands) for s in stages}
    tmp = {s: p.with_name(f".{p.name}.tmp") for s, p in final.items()}
    handles = {s: open(p, "w", encoding="utf-8") for s, p in tmp.items()}
    counts = {s: [0, 0.0, 0] for s in stages}
    bins = {s: [0] * HISTOGRAM_BINS for s in stages}
    too_long = 0
    try:
        for n, entry in iter_manifest(root / MANIFEST):
            tokens = entry.total_tokens
            if not isinstance(tokens, int):
                raise DatasetError(f"{root / MANIFEST} line {n}: no total_tokens (run `synth tokenize`)")
            if quality and not quality.keeps(entry):
                continue
            fits = (
                [s for s in stages if lower[s] < tokens <= s] if bands else [s for s in stages if tokens <= s]
            )
            too_long += tokens > stages[-1]
            line = entry.to_line()
            for s in fits:
                handles[s].write(line)
                c = counts[s]
                c[0] += 1
                c[1] += float(entry.speech_duration_sec or entry.duration_sec) / 3600
                c[2] += tokens
                width = (s - lower[s]) / HISTOGRAM_BINS
                bins[s][min(HISTOGRAM_BINS - 1, max(0, int((tokens - lower[s] - 1) // width)))] += 1
    finally:
        for h in handles.values():
            h.close()
    summaries = []
    for s in stages:
        os.replace(tmp[s], final[s])
        summaries.append(
            StageSummary(
                s, final[s], int(counts[s][0]), counts[s][1], int(counts[s][2]), lower[s], tuple(bins[s])
            )
        )
    return summaries, too_long


def refreshed_splits(out_dir: Path, entries: Iterable[ManifestEntry]) -> dict[Path, bytes]:
    """The split manifests in a folder with their lines replaced by `entries`' (same
    conversations, same order: a split chosen by tokens or by quality keeps its members), for a
    rewrite that changes manifest lines but not which split a conversation is in (`synth score`)."""
    by_id = {e.conversation_id: e.to_line() for e in entries}
    out: dict[Path, bytes] = {}
    for path, _stages, _bands in existing_splits(out_dir):
        lines = []
        for raw in path.read_text(encoding="utf-8").splitlines(keepends=True):
            try:
                cid = json.loads(raw).get("conversation_id") if raw.strip() else None
            except (ValueError, AttributeError):
                cid = None
            lines.append(by_id.get(cid, raw) if isinstance(cid, str) else raw)
        out[path] = "".join(lines).encode("utf-8")
    return out
