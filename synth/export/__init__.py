"""Exports of a dataset for training code that does not read our folder layout. To add one: a
module with a function (root, out, manifest, options) -> ExportSummary and an options dataclass
(its fields become the flags of `synth export --to NAME`), and one entry in EXPORTS. Every
export is crash-consistent (synth.export.switch): a kill leaves the previous export or the new
one.

- `llama-omni`: LLaMA-Omni's training JSON (llama_omni.py).
- `hf`: a Hugging Face dataset folder (hf.py).
- `lhotse`: Lhotse manifests (lhotse.py).
- `lhotse-shar`: Lhotse Shar shards, tar audio plus cut manifests (shar.py).
- `moshi`: moshi-finetune's stereo WAVs, alignments and JSONL (moshi.py).
- `memory`: one JSONL line per memory probe, what a memory evaluation reads (memory.py).

Memory probes (docs/memory.md) are training data only where the dataset was made so (`generate
--probes in-training`): llama-omni and hf carry them there by default and otherwise only when
asked, moshi only when asked, the Lhotse exports never (they are not turns)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .hf import HfOptions, export_hf
from .lhotse import LhotseOptions, export_lhotse
from .llama_omni import LlamaOmniOptions, export_llama_omni
from .memory import MemoryOptions, export_memory
from .moshi import MoshiOptions, export_moshi
from .shar import SharOptions, export_shar
from .summary import ExportSummary

__all__ = [
    "EXPORTS",
    "ExportSummary",
    "ExportTarget",
    "export_hf",
    "export_lhotse",
    "export_llama_omni",
    "export_memory",
    "export_moshi",
    "export_shar",
]


@dataclass(frozen=True)
class ExportTarget:
    """An export `synth export --to NAME` knows: what its output is, its settings and writer."""

    name: str
    output_help: str
    options: type
    run: Callable[[Path, Path, Path | None, Any], ExportSummary]
    counts: str = "sample"  # what the number it returns counts

    def write(self, root: Path, out: Path, manifest: Path | None, options: Any) -> int:
        """The count alone (the summary's other lines are in `run`'s ExportSummary)."""
        return self.run(root, out, manifest, options).count


EXPORTS: dict[str, ExportTarget] = {
    t.name: t
    for t in (
        ExportTarget(
            "llama-omni",
            "LLaMA-Omni's training JSON file",
            LlamaOmniOptions,
            lambda root, out, manifest, o: export_llama_omni(
                root, out, o.relative, manifest, o.long_turns, o.probes
            ),
        ),
        ExportTarget(
            "lhotse",
            "a folder of Lhotse manifests (recordings, supervisions, cuts)",
            LhotseOptions,
            lambda root, out, manifest, o: export_lhotse(root, out, manifest, o.gzip, o.conversations),
            "turn",
        ),
        ExportTarget(
            "lhotse-shar",
            "a folder of Lhotse Shar shards (cuts.NNNNNN.jsonl.gz + recording.NNNNNN.tar), resumable",
            SharOptions,
            lambda root, out, manifest, o: export_shar(root, out, manifest, o.cuts_per_shard, o.shar_audio),
            "cut",
        ),
        ExportTarget(
            "moshi",
            "a moshi-finetune data folder (data.jsonl, stereo WAVs, alignments)",
            MoshiOptions,
            lambda root, out, manifest, o: export_moshi(
                root, out, manifest, o.main_speaker, o.sample_rate, o.probes
            ),
            "conversation",
        ),
        ExportTarget(
            "hf",
            "a Hugging Face dataset folder (save_to_disk)",
            HfOptions,
            lambda root, out, manifest, o: export_hf(root, out, manifest, o.undecoded, o.probes),
        ),
        ExportTarget(
            "memory",
            "a JSONL file, one line per memory probe (question audio, answer, evidence, distances)",
            MemoryOptions,
            lambda root, out, manifest, o: export_memory(root, out, manifest, o.relative),
            "probe",
        ),
    )
}
