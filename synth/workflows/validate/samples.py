"""Training samples (samples.jsonl): one per turn (then one per probe, where they are in the
training samples), in turn order, with aligned arrays, each of the turn's audio file and of the
target kind the rules give it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...dataset.records import SAMPLES_FILE, TurnRecord
from ...errors import RecordError
from ...samples.builder import part_starts, target_kinds
from .problems import Place, Problem

if TYPE_CHECKING:
    from .conversation import Conversation


def check_samples(conv: Conversation) -> list[Problem]:
    """samples.jsonl, where there is one: its lines (`check_sample_lines`) and their targets."""
    path = conv.folder / SAMPLES_FILE
    if not path.exists():
        return []
    meta = conv.meta
    tokens: dict[str, Any] = meta["tokens"] if isinstance(meta.get("tokens"), dict) else {}
    in_samples = len(meta.get("probes") or []) if tokens.get("probes_in_samples") else 0
    at = conv.place(SAMPLES_FILE)
    return check_sample_lines(path, at, len(meta["turns"]), in_samples) + _check_targets(path, conv, at)


def check_sample_lines(
    path: Path, at: Place, num_turns: int, probes: int = 0, first: int = 0
) -> list[Problem]:
    """One sample per turn (then one per probe), in turn order from `first`, with aligned arrays."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return [at.error("not UTF-8")]
    problems = []
    if len(lines) != num_turns + probes:
        what = f"{num_turns} turns" + (f" and {probes} probes" if probes else "")
        problems.append(at.error(f"{len(lines)} samples for {what}"))
    for n, line in enumerate(lines, start=1):
        turn = first + n - 1 if n <= num_turns else None
        here = Place(f"{at} line {n}", at.conversation, at.file, turn)
        try:
            s = json.loads(line)
            ids, labels, mask = s["input_ids"], s["labels"], s["attention_mask"]
            ok = (
                s["turn_number"] == first + n - 1
                and len(ids) == len(labels) == len(mask)
                and 0 < s["original_length"] <= len(ids)
                and sum(mask) == s["original_length"]
            )
        except (ValueError, KeyError, TypeError):
            problems.append(
                here.error(
                    "not a sample (JSON with input_ids, labels, attention_mask, turn_number, original_length)"
                )
            )
            continue
        if not ok:
            problems.append(here.error("turn_number or array lengths are inconsistent"))
    return problems


def _check_targets(path: Path, conv: Conversation, at: Place) -> list[Problem]:
    """Every sample's target kind follows the rules (synth.samples.builder.target_kinds: a reply
    is the next other speaker's words within the same session part), and metadata says the same
    kind per turn. Checked where metadata records the kinds (datasets made before them had
    other rules)."""
    turns = conv.meta["turns"]
    try:
        samples = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        records = [TurnRecord.from_dict(t) for t in turns]
    except (ValueError, RecordError, UnicodeDecodeError):
        return []  # reported by the other checks
    for i, (sample, turn) in enumerate(zip(samples, records)):
        if isinstance(sample, dict) and sample.get("audio_file", turn.audio_file) != turn.audio_file:
            return [
                Place(f"{at} line {i + 1}", at.conversation, at.file, i).error(
                    f"audio_file {str(sample.get('audio_file'))[:80]!r} is not turn {i}'s {turn.audio_file!r}",
                    "audio_file",
                )
            ]
    if not turns or not all(isinstance(t, dict) and "target" in t for t in turns):
        return []
    if not all(isinstance(s, dict) for s in samples):
        return []  # a line that is not a sample: reported by check_sample_lines
    fmt = samples[0].get("format", "chat") if samples else "chat"
    expected = target_kinds(records, part_starts(conv.meta.get("segments")), fmt)
    for i, (sample, turn, (kind, _, _)) in enumerate(zip(samples, records, expected)):
        if sample.get("target") != kind or turn.target != kind:
            return [
                Place(f"{at} line {i + 1}", at.conversation, at.file, i).error(
                    f"target {sample.get('target')!r} (metadata: {turn.target!r}), but turn {i} is a "
                    f"{kind!r}: a reply is the next other speaker's words in the same part",
                    "target",
                )
            ]
    return []
