"""`synth merge`: join datasets (e.g. the per-shard datasets of `synth generate --shard I/N`)
into one valid dataset, every conversation exactly once. Every input is opened (and its manifest
read) before anything is written. Each conversation is copied through the same atomic writer
(staging, rename, locked manifest append): the files its records name, by the reader's one rule
for paths, checked against its integrity record, so a damaged conversation is reported and
left out, never passed on. A merge that is interrupted is simply run again; a conversation
already in the output is skipped, and an id found in two inputs is taken from the first and
reported."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..dataset.integrity import INTEGRITY_FILE
from ..dataset.integrity import problems as integrity_problems
from ..dataset.reader import ConversationRef, DatasetError, open_dataset
from ..dataset.records import METADATA_FILE, SAMPLES_FILE
from ..dataset.writer import AlreadyWritten, Claimed, Damaged, DatasetWriter
from ..errors import ConfigError


@dataclass
class MergeSummary:
    copied: int = 0
    already_there: int = 0
    duplicates: list[str] = field(default_factory=list)  # "id (in A and B)"
    damaged: list[str] = field(default_factory=list)  # "id (in A): what is wrong", left out

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
        return "\n".join(lines)


def merge_datasets(
    out: Path | str, inputs: Sequence[Path | str], progress: Callable[[str], None] | None = None
) -> MergeSummary:
    out = Path(out)
    sources = [Path(p) for p in inputs]
    if not sources:
        raise ConfigError("inputs", "at least one dataset to merge is needed")
    for src in sources:
        if src.resolve() == out.resolve():
            raise ConfigError("inputs", "the output cannot be one of the inputs", str(src))
    opened = [(src, open_dataset(src)) for src in sources]  # every input, before any write
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
    return summary


def conversation_files(ref: ConversationRef) -> dict[str, bytes]:
    """The files a conversation's records name (turns, events, conversation audio), its metadata,
    samples and integrity record, as name -> bytes, every path by the reader's rule."""
    meta = ref.metadata()
    names = [METADATA_FILE, SAMPLES_FILE, INTEGRITY_FILE]
    for turn in meta.turns:
        names += [turn.audio_file, turn.transcript_file]
    names += [e.audio_file for e in meta.events if e.audio_file]
    names += [meta.conversation_audio] if meta.conversation_audio else []
    files = {}
    for name in dict.fromkeys(names):
        path = ref.file(name, name)
        if path.is_file():
            files[name] = path.read_bytes()
        elif name not in (SAMPLES_FILE, INTEGRITY_FILE):
            raise DatasetError(f"{path}: missing")
    return files
