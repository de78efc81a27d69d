"""What a memory evaluation reads (docs/memory.md): one JSONL line per memory probe of the dataset,
in manifest order then probe order: `{"probe_id", "conversation_id", "conversation_path",
"question", "question_audio", "answer", "adversarial", "category", "scoring", "time",
"turn_number", "turns_before", "evidence", "distance_sec", "distance_tokens",
"conversation_audio", "answer_audio"}`.

An evaluator plays the conversation up to `time` (its first `turns_before` turns: those that end
by then), asks `question_audio` and scores the reply against `answer` (`synth memory-score`).
`conversation_path` is relative to the dataset root; the audio paths are absolute, or relative to
the output file's folder with `relative` (so the file and the dataset can move together);
`conversation_audio` and `answer_audio` are None where the dataset has no such file. Written
beside its output and renamed over it (synth.export.switch)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..dataset.reader import ConversationRef, open_dataset
from ..dataset.records import ConversationMetadata, ProbeRecord, conversation_path
from ..errors import DatasetError
from ..options import option
from .rows import member
from .summary import ExportSummary
from .switch import absolute, staged_file

_EPS = 1e-6  # metadata times are rounded to the millisecond


@dataclass(frozen=True)
class MemoryOptions:
    """The options of `synth export memory`."""

    # One flag per export: `synth export` gives each export's fields their own flags.
    relative: bool = option(
        False,
        flag="--memory-relative",
        help="memory: audio paths relative to the output file's folder (default absolute)",
    )


def _existing(ref: ConversationRef, name: str, field: str) -> Path:
    path = member(ref, name, field)
    if not path.is_file():
        raise DatasetError(f"{path}: missing ({ref.metadata_path} {field})")
    return path


def probe_line(
    ref: ConversationRef,
    meta: ConversationMetadata,
    index: int,
    probe: ProbeRecord,
    path_of: Callable[[Path], str],
) -> dict[str, Any]:
    """One probe as the evaluation reads it."""
    question = _existing(ref, probe.audio_file, f"probes[{index}].audio_file")
    answer = (
        _existing(ref, probe.answer_audio_file, f"probes[{index}].answer_audio_file")
        if probe.answer_audio_file
        else None
    )
    conversation = (
        _existing(ref, meta.conversation_audio, "conversation_audio") if meta.conversation_audio else None
    )
    return {
        "probe_id": probe.probe_id,
        "conversation_id": ref.conversation_id,
        "conversation_path": conversation_path(ref.conversation_id),
        "question": probe.question,
        "question_audio": path_of(question),
        "answer": probe.answer,
        "adversarial": probe.adversarial,
        "category": probe.category,
        "scoring": probe.scoring,
        "time": probe.time,
        "turn_number": probe.turn_number,
        "turns_before": sum(1 for t in meta.turns if t.end_time <= probe.time + _EPS),
        "evidence": probe.evidence,
        "distance_sec": probe.distance_sec,
        "distance_tokens": probe.distance_tokens,
        "conversation_audio": path_of(conversation) if conversation else None,
        "answer_audio": path_of(answer) if answer else None,
    }


def export_memory(
    root: Path | str, out: Path | str, manifest: Path | None = None, relative: bool = False
) -> ExportSummary:
    """Writes one line per memory probe of the dataset to `out`, staged so that it is never half
    written."""
    out = absolute(out)
    refs = open_dataset(Path(root), manifest)

    def path_of(wav: Path) -> str:
        return os.path.relpath(wav.resolve(), out.parent) if relative else str(wav.resolve())

    n = adversarial = conversations = 0
    with staged_file(out) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for ref in refs:
            meta = ref.metadata()
            conversations += bool(meta.probes)
            for k, probe in enumerate(meta.probes):
                fh.write(json.dumps(probe_line(ref, meta, k, probe, path_of), ensure_ascii=False) + "\n")
                n += 1
                adversarial += probe.adversarial
    notes = () if n else ("the dataset has no memory probes (a coherent source with questions makes them)",)
    details = {"conversations": conversations, "adversarial": adversarial}
    return ExportSummary(n, "probe", details, notes)
