"""`synth tokenize`: rewrite the samples, target kinds and token counts of an existing dataset
with another tokenizer, sample format or speech profile.

Crash-consistent as a whole: every new samples.jsonl, metadata.json, integrity record and the new
manifest are first written beside the old ones under hidden names, then switched in as one step
through a journal (synth.dataset.journal), under the dataset's lock. A kill before the switch
leaves the old dataset (the next writer removes the hidden files); a kill during it is finished
by the next writer; `synth validate` says so meanwhile. Nothing is written when a conversation
cannot be read or a turn is longer than the new speech profile allows."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..dataset.integrity import ALGORITHM, INTEGRITY_FILE, read_record
from ..dataset.journal import begin, roll_forward, switch, write_next
from ..dataset.reader import ConversationRef, DatasetError, open_dataset
from ..dataset.records import MANIFEST, PROBES_FILE, SAMPLES_FILE, ManifestEntry, samples_jsonl
from ..dataset.writer import DatasetWriter
from .builder import BuildsSamples, part_starts, with_probes


def retokenize(
    root: Path | str, builder: BuildsSamples, progress: Callable[[str], None] | None = None
) -> int:
    root = Path(root)
    writer = DatasetWriter(root)
    writer.recover()  # finishes, or undoes, a rewrite that was interrupted
    with writer.locked():
        refs = open_dataset(root)
        check_turn_limits(refs, builder)
        begin(root)
        try:
            targets, tokens_of = _write_next(refs, builder, progress)
            manifest = root / MANIFEST
            lines = []
            for raw in manifest.read_text(encoding="utf-8").splitlines():
                if raw.strip():
                    entry = ManifestEntry.from_dict(json.loads(raw))
                    tokens = tokens_of.get(entry.conversation_id)
                    lines.append((entry.with_tokens(tokens) if tokens else entry).to_line())
            write_next(manifest, "".join(lines).encode("utf-8"))
        except BaseException:
            roll_forward(root)  # nothing was switched yet: the hidden new files go
            raise
        switch(root, [*targets, manifest])
    return len(refs)


def _write_next(
    refs: list[ConversationRef], builder: BuildsSamples, progress: Callable[[str], None] | None
) -> tuple[list[Path], dict[str, dict[str, Any]]]:
    """Every conversation's new files, written beside the old ones."""
    import hashlib

    targets: list[Path] = []
    tokens_of: dict[str, dict[str, Any]] = {}
    for ref in refs:
        meta = ref.metadata()
        turns = ref.turns(meta)
        samples, tokens = builder.build(ref.conversation_id, turns, part_starts(meta.extra.get("segments")))
        for record, sample in zip(meta.turns, samples):
            record.target = sample["target"]
        new = {}
        if meta.probes:  # the memory probes' samples follow the new profile too (docs/memory.md)
            answers = builder.answer_samples(
                ref.conversation_id, meta.probes, {s: i for i, s in enumerate(meta.speakers)}
            )
            new[PROBES_FILE] = samples_jsonl(answers).encode("utf-8")
            if (meta.tokens or {}).get("probes_in_samples"):
                samples, tokens = with_probes(samples, tokens, answers)
        meta.tokens = tokens
        new[SAMPLES_FILE] = samples_jsonl(samples).encode("utf-8")
        new[ref.metadata_path.name] = meta.to_json().encode()
        for name, data in new.items():
            targets.append(write_next(ref.file(name, name), data))
        sealed = read_record(ref.folder)
        if sealed is not None:  # the integrity record follows the two files it names anew
            for name, data in new.items():
                sealed["files"][name] = {"size": len(data), ALGORITHM: hashlib.sha256(data).hexdigest()}
            body = (json.dumps(sealed, indent=1, sort_keys=True) + "\n").encode("utf-8")
            targets.append(write_next(ref.file(INTEGRITY_FILE, INTEGRITY_FILE), body))
        tokens_of[ref.conversation_id] = tokens
        if progress:
            progress(ref.conversation_id)
    return [t.with_name(t.name[1 : -len(".next")]) for t in targets], tokens_of


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
