"""`synth merge`: join datasets (e.g. the per-shard datasets of `synth generate --shard I/N`)
into one valid dataset, every conversation exactly once. Each conversation is copied through the
same atomic writer (staging, rename, locked manifest append), so a merge that is interrupted is
simply run again; a conversation already in the output is skipped, and an id found in two inputs
is taken from the first and reported."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..dataset.reader import open_dataset
from ..dataset.writer import AlreadyWritten, DatasetWriter
from ..errors import ConfigError


@dataclass
class MergeSummary:
    copied: int = 0
    already_there: int = 0
    duplicates: list[str] = field(default_factory=list)  # "id (in A and B)"

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
    writer = DatasetWriter(out)
    writer.recover()
    done = writer.done_ids()
    first_seen: dict[str, Path] = {}
    summary = MergeSummary()
    for src in sources:
        for ref in open_dataset(src):
            cid = ref.conversation_id
            if cid in first_seen:
                summary.duplicates.append(f"{cid} (in {first_seen[cid]} and {src})")
                continue
            first_seen[cid] = src
            if cid in done:
                summary.already_there += 1
                continue
            files = {p.name: p.read_bytes() for p in sorted(ref.folder.iterdir()) if p.is_file()}
            try:
                writer.write_files(cid, files, ref.entry)
            except AlreadyWritten:
                summary.already_there += 1
                continue
            summary.copied += 1
            if progress:
                progress(cid)
    return summary
