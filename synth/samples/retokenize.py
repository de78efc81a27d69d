"""`synth tokenize`: rewrite the samples and token counts of an existing dataset with another
tokenizer or sample format. Each conversation's samples.jsonl and metadata.json are replaced by
rename (never half-written); the manifest is rewritten last, under the writer's lock. A run that
is interrupted leaves every file whole and can simply be run again."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..dataset.reader import open_dataset
from ..dataset.records import MANIFEST, SAMPLES_FILE, ManifestEntry, samples_jsonl
from ..dataset.writer import DatasetWriter, replace_text
from ..produce.assembly import SampleBuilder


def retokenize(
    root: Path | str, builder: SampleBuilder, progress: Callable[[str], None] | None = None
) -> int:
    root = Path(root)
    refs = open_dataset(root)
    tokens_of: dict[str, dict[str, Any]] = {}
    for ref in refs:
        meta = ref.metadata()
        samples, tokens = builder.build(ref.conversation_id, ref.turns(meta))
        replace_text(ref.folder / SAMPLES_FILE, samples_jsonl(samples))
        meta.tokens = tokens
        replace_text(ref.metadata_path, meta.to_json())
        tokens_of[ref.conversation_id] = tokens
        if progress:
            progress(ref.conversation_id)
    writer = DatasetWriter(root)
    with writer.locked():
        lines = []
        for raw in (root / MANIFEST).read_text(encoding="utf-8").splitlines():
            if not raw.strip():
                continue
            entry = ManifestEntry.from_dict(json.loads(raw))
            tokens = tokens_of.get(entry.conversation_id)
            lines.append((entry.with_tokens(tokens) if tokens else entry).to_line())
        replace_text(root / MANIFEST, "".join(lines))
    return len(refs)
