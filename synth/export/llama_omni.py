"""LLaMA-Omni's training JSON, one entry per sample: `{"id", "speech", "conversations":
[{"from": "human", "value": "<speech>"}, {"from": "gpt", "value": target}], "conversation_id",
"turn_number", "speaker_id"}`, with `speech` an absolute path (or relative to the dataset root
with `relative=True`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..dataset.reader import open_dataset
from .rows import turn_rows


@dataclass(frozen=True)
class LlamaOmniOptions:
    relative: bool = field(
        default=False, metadata={"help": "speech paths relative to the dataset root (default absolute)"}
    )


def export_llama_omni(
    root: Path | str, out: Path | str, relative: bool = False, manifest: Path | None = None
) -> int:
    root, out = Path(root), Path(out)
    refs = open_dataset(root, manifest)
    tmp = out.with_name(f".{out.name}.tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("[\n")
        for ref, turn, sample, target in turn_rows(refs):
            wav = ref.folder / turn.audio_file
            entry = {
                "id": f"{ref.conversation_id}_turn_{sample['turn_number']}",
                "speech": str(wav.relative_to(root.resolve())) if relative else str(wav),
                "conversations": [{"from": "human", "value": "<speech>"}, {"from": "gpt", "value": target}],
                "conversation_id": ref.conversation_id,
                "turn_number": sample["turn_number"],
                "speaker_id": sample["speaker_id"],
            }
            fh.write((",\n" if n else "") + json.dumps(entry, ensure_ascii=False))
            n += 1
        fh.write("\n]\n")
    os.replace(tmp, out)
    return n
