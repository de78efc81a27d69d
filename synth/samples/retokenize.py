"""`synth tokenize`: rewrite the samples and token counts of an existing dataset with another
tokenizer or sample format. Each conversation's samples.jsonl and metadata.json are replaced by
rename (never half-written); the manifest is rewritten last, under the writer's lock. A run that
is interrupted leaves every file whole and can simply be run again."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..dataset.reader import ConversationRef, DatasetError, open_dataset
from ..dataset.records import MANIFEST, SAMPLES_FILE, ManifestEntry, samples_jsonl
from ..dataset.writer import DatasetWriter, replace_text
from .builder import BuildsSamples, part_starts


def retokenize(
    root: Path | str, builder: BuildsSamples, progress: Callable[[str], None] | None = None
) -> int:
    root = Path(root)
    refs = open_dataset(root)
    check_turn_limits(refs, builder)
    tokens_of: dict[str, dict[str, Any]] = {}
    for ref in refs:
        meta = ref.metadata()
        turns = ref.turns(meta)
        samples, tokens = builder.build(ref.conversation_id, turns, part_starts(meta.extra.get("segments")))
        replace_text(ref.folder / SAMPLES_FILE, samples_jsonl(samples))
        meta.tokens = tokens
        for record, sample in zip(meta.turns, samples):
            record.target = sample["target"]
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


def check_turn_limits(refs: list[ConversationRef], builder: BuildsSamples) -> None:
    """Refuse, before anything is rewritten, a speech profile whose turn limit a turn of the
    dataset exceeds (LLaMA-Omni's 30 s: the model would cut the audio): such a dataset must be
    generated again with that profile, which splits long turns at sentence boundaries."""
    limit = getattr(getattr(builder, "config", None), "profile", None)
    limit = limit.max_turn_sec if limit is not None else None
    if limit is None:
        return
    for ref in refs:
        for turn in ref.metadata().turns:
            if turn.duration_sec > limit + 1e-6:
                raise DatasetError(
                    f"{ref.conversation_id}: turn {turn.turn_id} lasts {turn.duration_sec:.1f} s, longer "
                    f"than the speech profile's {limit:g} s (the model would cut it): generate the "
                    "dataset with this profile (long turns are split), or choose a rate:N profile"
                )
