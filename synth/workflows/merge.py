"""`synth merge`: join datasets (e.g. the per-shard datasets of `synth generate --shard I/N`)
into one valid dataset, every conversation exactly once. Every input is opened (and its manifest
read) before anything is written. Each conversation is copied through the same atomic writer
(staging, rename, locked manifest append): the files its records name, by the reader's one rule
for paths, checked against its integrity record, so a damaged conversation is reported and
left out, never passed on. A merge that is interrupted is simply run again; a conversation
already in the output is skipped, and an id found in two inputs is taken from the first and
reported.

One set of sample settings per dataset (docs/reliability.md): inputs whose samples were made with
other settings than each other's or the output's (speech profile, tokenizer, format...) are
refused before anything is written, naming the `synth tokenize` that makes them agree; a
conversation whose own settings differ from its dataset's is left out and reported. The output's
dataset.json is written where it has none (the inputs' own, where they all agree). Merge holds
each input as a reader and the output as a writer, so it runs beside other writers of the output,
never beside a rewrite of either."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dataset.fingerprint import (
    read_record,
    records_samples,
    sample_differences,
    sample_options,
    tokens_options,
    write_record,
)
from ..dataset.integrity import INTEGRITY_FILE
from ..dataset.integrity import problems as integrity_problems
from ..dataset.reader import ConversationRef, open_dataset
from ..dataset.records import METADATA_FILE, PROBES_FILE, SAMPLES_FILE
from ..dataset.writer import READ, DatasetWriter, using
from ..errors import AlreadyWritten, Claimed, ConfigError, ConflictError, Damaged, DatasetError
from ..samples.retokenize import tokenize_command


@dataclass
class MergeSummary:
    """What a merge did: the conversations copied, those already there, and those left out
    (duplicates, damaged, made with other settings)."""

    copied: int = 0
    already_there: int = 0
    duplicates: list[str] = field(default_factory=list)  # "id (in A and B)"
    damaged: list[str] = field(default_factory=list)  # "id (in A): what is wrong", left out
    other_settings: list[str] = field(default_factory=list)  # "id (in A): speech_profile ...", left out

    def format(self, out: Path) -> str:
        lines = [f"merged {self.copied} conversation(s) into {out}"]
        if self.already_there:
            lines.append(f"skipped {self.already_there} already in {out}")
        if self.duplicates:
            lines.append(
                f"{len(self.duplicates)} id(s) in more than one input, taken from the first: "
                + ", ".join(self.duplicates[:5])
                + (" ..." if len(self.duplicates) > 5 else "")
            )
        if self.damaged:
            lines.append(
                f"DAMAGED: {len(self.damaged)} conversation(s) left out (not what was written): "
                + "; ".join(self.damaged[:5])
                + (" ..." if len(self.damaged) > 5 else "")
            )
        if self.other_settings:
            lines.append(
                f"OTHER SETTINGS: {len(self.other_settings)} conversation(s) left out (their samples were "
                "made otherwise than their dataset's): "
                + "; ".join(self.other_settings[:5])
                + (" ..." if len(self.other_settings) > 5 else "")
            )
        return "\n".join(lines)

    @property
    def left_out(self) -> bool:
        return bool(self.damaged or self.other_settings)


def merge_datasets(
    out: Path | str, inputs: Sequence[Path | str], progress: Callable[[str], None] | None = None
) -> MergeSummary:
    """Merges `inputs` into the dataset `out`, every conversation once (from the first input that
    has it), checked and copied atomically."""
    out = Path(out)
    sources = [Path(p) for p in inputs]
    if not sources:
        raise ConfigError("inputs", "at least one dataset to merge is needed")
    for src in sources:
        if src.resolve() == out.resolve():
            raise ConfigError("inputs", "the output cannot be one of the inputs", str(src))
    with contextlib.ExitStack() as held:
        for src in sources:  # no rewrite of an input while it is read
            if src.is_dir():
                held.enter_context(using(src, READ, "synth merge"))
        return _merge(out, sources, progress)


def _merge(out: Path, sources: list[Path], progress: Callable[[str], None] | None) -> MergeSummary:
    opened = [(src, open_dataset(src)) for src in sources]  # every input, before any write
    expected = _agreed_settings(out, opened)
    writer = DatasetWriter(out)
    writer.recover()
    done = writer.done_ids()
    first_seen: dict[str, Path] = {}
    summary = MergeSummary()
    for src, refs in opened:
        for ref in refs:
            cid = ref.conversation_id
            if cid in first_seen:
                summary.duplicates.append(f"{cid} (in {first_seen[cid]} and {src})")
                continue
            first_seen[cid] = src
            if cid in done:
                summary.already_there += 1
                continue
            bad = integrity_problems(ref.folder)
            if bad:
                summary.damaged.append(f"{cid} (in {src}): {bad[0]}")
                continue
            if expected is not _UNKNOWN:
                differ = sample_differences(expected, _conversation_settings(ref))
                if differ:
                    summary.other_settings.append(f"{cid} (in {src}): {', '.join(differ)}")
                    continue
            try:
                writer.write_files(cid, conversation_files(ref), ref.entry)
            except (AlreadyWritten, Claimed):
                summary.already_there += 1
                continue
            except (DatasetError, Damaged) as exc:  # a path outside its folder, a link, a torn file
                summary.damaged.append(f"{cid} (in {src}): {exc}")
                continue
            summary.copied += 1
            if progress:
                progress(cid)
    _record_options(writer, [src for src, _ in opened])
    writer.close()
    return summary


_UNKNOWN = object()


def _conversation_settings(ref: ConversationRef) -> dict[str, Any] | None:
    try:
        meta = json.loads(ref.metadata_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}  # reported as damaged by the copy
    return tokens_options(meta.get("tokens") if isinstance(meta, dict) else None)


def _settings(root: Path, refs: list[ConversationRef] | None) -> Any:
    """A dataset's sample settings: dataset.json's, else its first conversation's; _UNKNOWN for
    an empty dataset that records none."""
    record = read_record(root)
    if record is not None and records_samples(record["options"]):
        return sample_options(record["options"])
    if refs is None:
        try:
            refs = open_dataset(root)
        except DatasetError:
            return _UNKNOWN
    return _conversation_settings(refs[0]) if refs else _UNKNOWN


def _agreed_settings(out: Path, opened: list[tuple[Path, list[ConversationRef]]]) -> Any:
    """The sample settings every input and the output agree on (_UNKNOWN when none says);
    ConflictError naming the `synth tokenize` that makes two of them agree."""
    named = [(out, _settings(out, None))] + [(src, _settings(src, refs)) for src, refs in opened]
    known = [(path, s) for path, s in named if s is not _UNKNOWN]
    for other, b in known[1:]:
        first, a = known[0]
        differ = sample_differences(a, b)
        if differ:
            fix = f"`{tokenize_command(str(other), a)}`" if a is not None else "a dataset with samples"
            raise ConflictError(
                "inputs",
                f"{other}'s samples were made otherwise than {first}'s ({', '.join(differ)}): one "
                f"dataset holds one set of sample settings. Make them agree first, e.g. {fix}",
            )
    return known[0][1] if known else _UNKNOWN


def _record_options(writer: DatasetWriter, sources: list[Path]) -> None:
    """Give the output a dataset.json where it has none: the inputs' own where they all have the
    same, else (partial) the sample settings they agree on."""
    with writer.locked():
        if read_record(writer.root) is not None:
            return
        records = [r for r in (read_record(src) for src in sources) if r is not None]
        if not records or len(records) < len(sources):
            return
        first = records[0]
        if all(r["options"] == first["options"] for r in records):
            record = dict(first)
        else:  # the same samples (checked before copying), other voices or seeds: say what is known
            keys = {
                k: v
                for k, v in first["options"].items()
                if k in ("samples", "tokenizer") or k.startswith("samples.")
            }
            record = {"synth_version": first.get("synth_version"), "options": keys, "partial": True}
        write_record(writer.root, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def conversation_files(ref: ConversationRef) -> dict[str, bytes]:
    """The files a conversation's records name (turns, events, conversation audio), its metadata,
    samples and integrity record, as name -> bytes, every path by the reader's rule."""
    meta = ref.metadata()
    names = [METADATA_FILE, SAMPLES_FILE, INTEGRITY_FILE]
    for turn in meta.turns:
        names += [turn.audio_file, turn.transcript_file]
    names += [e.audio_file for e in meta.events if e.audio_file]
    names += [meta.conversation_audio] if meta.conversation_audio else []
    for probe in meta.probes:  # memory probes: their question, its transcript, a spoken answer
        names += [probe.audio_file, probe.transcript_file]
        names += [probe.answer_audio_file] if probe.answer_audio_file else []
    names.append(PROBES_FILE)
    files = {}
    for name in dict.fromkeys(names):
        path = ref.file(name, name)
        if path.is_file():
            files[name] = path.read_bytes()
        elif name not in (SAMPLES_FILE, INTEGRITY_FILE, PROBES_FILE):
            raise DatasetError(f"{path}: missing")
    return files
