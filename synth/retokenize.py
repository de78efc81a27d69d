"""`synth tokenize`: rewrite the samples and token counts of an existing dataset with another
tokenizer or sample format. Each conversation's samples.jsonl and metadata.json are replaced by
rename (never half-written); the manifest is rewritten last, under the writer's lock. A run that
is interrupted leaves every file whole and can simply be run again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from .dataset import DatasetError, open_dataset, read_json
from .samples import SampleBuilder, TurnRecord
from .metadata import metadata_json, samples_jsonl
from .writer import MANIFEST, DatasetWriter, replace_text


def turn_records(meta: dict[str, Any], folder: Path) -> list[TurnRecord]:
    speakers = meta["speakers"]
    records = []
    for t in meta["turns"]:
        text = t.get("text")
        if text is None:
            path = folder / t["transcript_file"]
            try:
                text = path.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                raise DatasetError(f"{path}: missing") from None
        records.append(TurnRecord(int(t["turn_id"]), speakers.index(t["speaker"]), text,
                                  t["audio_file"], float(t["duration_sec"])))
    return records


TOKEN_FIELDS = ("total_tokens", "text_tokens", "speech_tokens")


def retokenize(root: Path | str, builder: SampleBuilder,
               progress: Callable[[str], None] | None = None) -> int:
    root = Path(root)
    refs = open_dataset(root)
    tokens_of: dict[str, dict[str, Any]] = {}
    for ref in refs:
        meta_path = ref.folder / "metadata.json"
        meta = read_json(meta_path)
        try:
            records = turn_records(meta, ref.folder)
        except (KeyError, ValueError, TypeError) as exc:
            raise DatasetError(f"{meta_path}: malformed turns ({exc})") from None
        samples, tokens = builder.build_records(ref.conversation_id, records)
        replace_text(ref.folder / "samples.jsonl", samples_jsonl(samples))
        meta["tokens"] = tokens
        meta.update({k: tokens[k] for k in TOKEN_FIELDS})
        replace_text(meta_path, metadata_json(meta))
        tokens_of[ref.conversation_id] = tokens
        if progress:
            progress(ref.conversation_id)
    writer = DatasetWriter(root)
    with writer.locked():
        lines = []
        for raw in (root / MANIFEST).read_text(encoding="utf-8").splitlines():
            if not raw.strip():
                continue
            entry = json.loads(raw)
            tokens = tokens_of.get(entry["conversation_id"])
            if tokens:
                entry.update({k: tokens[k] for k in TOKEN_FIELDS})
            lines.append(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")
        replace_text(root / MANIFEST, "".join(lines))
    return len(refs)
