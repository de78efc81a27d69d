"""`synth tokenize`: rewrite the samples, target kinds and token counts of an existing dataset
with another tokenizer, sample format or speech profile.

Crash-consistent as a whole: every new samples.jsonl, metadata.json, integrity record and the new
manifest are first written beside the old ones under hidden names, then switched in as one step
through a journal (synth.dataset.journal), under the dataset's lock. A kill before the switch
leaves the old dataset (the next writer removes the hidden files); a kill during it is finished
by the next writer; `synth validate` says so meanwhile. Nothing is written when a conversation
cannot be read or a turn is longer than the new speech profile allows.

It holds the dataset alone (synth.dataset.writer.DatasetWriter.rewriting): it refuses to start,
naming the process, while another tool uses the dataset (or waits for it with `wait`), and no
writer starts while it runs, so a dataset never holds conversations of two option sets.
dataset.json records the new sample options, and the curriculum splits inside the dataset
(`splits/stage_N.jsonl`, `band_N.jsonl`) are rewritten with the new token counts, in the same
switch."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..dataset.fingerprint import DATASET_FILE, sample_keys, with_sample_keys
from ..dataset.journal import Rewrite
from ..dataset.reader import ConversationRef, open_dataset
from ..dataset.records import MANIFEST, PROBES_FILE, SAMPLES_FILE, ManifestEntry, samples_jsonl
from ..dataset.writer import DatasetWriter, Holder
from ..errors import DatasetError
from .builder import (
    DEFAULT_SYSTEM_PROMPT,
    SYSTEM_PROMPTS,
    BuildsSamples,
    SampleConfig,
    part_starts,
    with_probes,
)
from .curriculum import SPLITS_DIR, existing_splits, split_lines
from .tokenizer import DEFAULT_TOKENIZER


def retokenize(
    root: Path | str,
    builder: BuildsSamples,
    progress: Callable[[str], None] | None = None,
    *,
    options: Mapping[str, Any] | None = None,
    wait: bool = False,
    on_wait: Callable[[list[Holder]], None] | None = None,
) -> int:
    """Rewrite every conversation's samples with `builder`; returns how many. `options`: the
    sample settings dataset.json records afterwards (synth.dataset.fingerprint.sample_keys; by
    default the builder's own, where it has a `config` and a `tokenizer`). DatasetBusy, naming
    the process, while another tool uses the dataset, unless `wait` (`on_wait` is told whom it
    waits for)."""
    root = Path(root).resolve()  # `ds`, `.`, `link/`: every path below is inside this one
    if not (root / MANIFEST).is_file():
        raise DatasetError(f"{root / MANIFEST}: missing (is {root} a dataset?)")
    if options is None and hasattr(builder, "config") and hasattr(builder, "tokenizer"):
        options = sample_keys(builder.config, builder.tokenizer.name)
    writer = DatasetWriter(root)
    marked = dict(options or {})
    with writer.rewriting(marked, wait, on_wait) as rewrite:  # finishes, or undoes, one interrupted
        refs = open_dataset(root)
        check_turn_limits(refs, builder)
        tokens_of = _write_next(rewrite, refs, builder, progress)
        entries = []
        for raw in (root / MANIFEST).read_text(encoding="utf-8").splitlines():
            if raw.strip():
                entry = ManifestEntry.from_dict(json.loads(raw))
                tokens = tokens_of.get(entry.conversation_id)
                entries.append(entry.with_tokens(tokens) if tokens else entry)
        rewrite.write(root / MANIFEST, "".join(e.to_line() for e in entries).encode("utf-8"))
        if options:
            rewrite.write(root / DATASET_FILE, with_sample_keys(root, options))
        for path, stages, bands in existing_splits(root / SPLITS_DIR):
            rewrite.write(path, split_lines(entries, stages, bands)[path.name].encode("utf-8"))
    return len(refs)


def _write_next(
    rewrite: Rewrite,
    refs: list[ConversationRef],
    builder: BuildsSamples,
    progress: Callable[[str], None] | None,
) -> dict[str, dict[str, Any]]:
    """Every conversation's new files, written beside the old ones; returns their token counts."""
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
        for name in new:
            ref.file(name, name)  # by the reader's one rule: a plain file, not a link
        rewrite.conversation(ref.folder, new)  # the integrity record follows the files it names anew
        tokens_of[ref.conversation_id] = tokens
        if progress:
            progress(ref.conversation_id)
    return tokens_of


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


def tokenize_command(dataset: str, settings: Mapping[str, Any]) -> str:
    """The `synth tokenize` command line that gives a dataset these sample settings (the
    defaults left out)."""
    defaults = SampleConfig()
    words = ["synth", "tokenize", shlex.quote(dataset)]
    if settings.get("speech_profile") is not None:
        words += ["--speech-profile", shlex.quote(str(settings["speech_profile"]))]
    if settings.get("tokenizer") not in (None, DEFAULT_TOKENIZER):
        words += ["--tokenizer", shlex.quote(str(settings["tokenizer"]))]
    if settings.get("format") not in (None, defaults.format):
        words += ["--sample-format", shlex.quote(str(settings["format"]))]
    if settings.get("pad_multiple") not in (None, defaults.pad_multiple):
        words += ["--pad-multiple", str(settings["pad_multiple"])]
    prompt = settings.get("system_prompt")
    if prompt not in (None, DEFAULT_SYSTEM_PROMPT):
        preset = next((k for k, v in SYSTEM_PROMPTS.items() if v == prompt), None)
        words += ["--system-prompt", shlex.quote(str(preset or prompt))]
    return " ".join(words)
