"""Common Voice (`clips/*.mp3` with `train.tsv`, `dev.tsv`, `test.tsv`, `validated.tsv`): short
clips of different people grouped into multi-speaker pseudo-conversations of `turns` turns and
`speakers` speakers, taking turns in rotation so that no one speaks twice in a row unless the
clips left make it unavoidable.

Streaming: rows are read lazily and buffered per speaker; a conversation is emitted as soon as
enough speakers have enough clips; the buffer is bounded (`max_buffer` rows), past which the
fullest speakers are grouped with fewer partners."""

from __future__ import annotations

import csv
import hashlib
from collections import OrderedDict, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..domain import Source
from ..errors import ConfigError, DialogError, SynthError
from ..produce.recorded import RecordedGroup, Utterance

REQUIRED = ("client_id", "path", "sentence")
SPLITS = ("train", "dev", "test", "validated", "other", "invalidated")


def _speaker_label(client_id: str) -> str:
    return "cv" + hashlib.sha1(client_id.encode()).hexdigest()[:8]


def read_commonvoice(
    root: Path,
    split: str = "train",
    turns: int = 8,
    speakers: int = 2,
    max_buffer: int = 20_000,
    min_turns: int = 2,
) -> Iterator[RecordedGroup | DialogError]:
    """The clips of a Common Voice split as conversations of `turns` turns among `speakers`
    speakers, lazily, at most `max_buffer` rows held."""
    root = Path(root)
    tsv = root / f"{split}.tsv"
    if not tsv.is_file():
        raise SynthError(f"{tsv}: missing (Common Voice splits: {', '.join(SPLITS)})")
    if turns < 1 or speakers < 1:
        raise ConfigError("turns", "turns and speakers per conversation must be at least 1")
    clips = root / "clips"
    per_turn = -(-turns // speakers)
    buffers: OrderedDict[str, deque[tuple[int, dict[str, str]]]] = OrderedDict()
    meta: dict[str, dict[str, str]] = {}
    buffered = 0
    index = 0

    def emit(chosen: list[str], count: int) -> RecordedGroup:
        nonlocal buffered, index
        utts: list[Utterance] = []
        rows: list[Any] = []
        order = list(chosen)
        last = None
        while len(utts) < count:
            candidates = [s for s in order if buffers.get(s)] or []
            if not candidates:
                break
            pick = next((s for s in candidates if s != last), candidates[0])
            line, row = buffers[pick].popleft()
            buffered -= 1
            utts.append(Utterance(pick, clips / row["path"], row["sentence"]))
            rows.append(line)
            last = pick
            order = order[1:] + order[:1]
        for s in chosen:
            if not buffers.get(s):
                buffers.pop(s, None)
        group = RecordedGroup(
            conversation_id=f"commonvoice_{split}_{index:06d}",
            source=Source(dataset="commonvoice", split=split, index=index, path=str(tsv), line=rows[0]),
            corpus="commonvoice",
            utterances=tuple(utts),
            speaker_meta={s: meta[s] for s in dict.fromkeys(u.speaker for u in utts)},
            extra={"transcript_style": "commonvoice", "tsv_lines": rows},
        )
        index += 1
        return group

    def ready() -> list[str] | None:
        full = [s for s, b in buffers.items() if len(b) >= per_turn]
        return full[:speakers] if len(full) >= speakers else None

    with open(tsv, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise SynthError(f"{tsv}: missing column(s) {missing}; found {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            if not row.get("path") or not (row.get("sentence") or "").strip() or not row.get("client_id"):
                yield DialogError("row without client_id, path or sentence", f"{tsv} line {line}")
                continue
            label = _speaker_label(row["client_id"])
            meta.setdefault(
                label, {k: row[k] for k in ("gender", "age", "accents", "accent", "locale") if row.get(k)}
            )
            buffers.setdefault(label, deque()).append((line, row))
            buffered += 1
            chosen = ready()
            if chosen:
                yield emit(chosen, turns)
            elif buffered > max_buffer:  # too few distinct speakers: group the fullest anyway
                fullest = sorted(buffers, key=lambda s: -len(buffers[s]))[:speakers]
                yield emit(fullest, turns)
    while buffered >= min_turns:
        chosen = sorted(buffers, key=lambda s: -len(buffers[s]))[:speakers]
        yield emit(chosen, turns)
