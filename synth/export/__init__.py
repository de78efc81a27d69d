"""Exports of a dataset for training code that does not read our folder layout. To add one: a
module with a function (root, out, manifest, options) -> count and an options dataclass (its
fields become the flags of `synth export --to NAME`), and one entry in EXPORTS.

- `llama-omni`: LLaMA-Omni's training JSON (llama_omni.py).
- `hf`: a Hugging Face dataset folder (hf.py).
- `lhotse`: Lhotse manifests (lhotse.py).
- `moshi`: moshi-finetune's stereo WAVs, alignments and JSONL (moshi.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .hf import HfOptions, export_hf
from .lhotse import LhotseOptions, export_lhotse
from .llama_omni import LlamaOmniOptions, export_llama_omni
from .moshi import MoshiOptions, export_moshi

__all__ = ["EXPORTS", "ExportTarget", "export_hf", "export_lhotse", "export_llama_omni", "export_moshi"]


@dataclass(frozen=True)
class ExportTarget:
    """An export `synth export --to NAME` knows: what its output is, its settings and writer."""

    name: str
    output_help: str
    options: type
    write: Callable[[Path, Path, Path | None, Any], int]
    counts: str = "sample"  # what the number it returns counts


EXPORTS: dict[str, ExportTarget] = {
    t.name: t
    for t in (
        ExportTarget(
            "llama-omni",
            "LLaMA-Omni's training JSON file",
            LlamaOmniOptions,
            lambda root, out, manifest, o: export_llama_omni(root, out, o.relative, manifest),
        ),
        ExportTarget(
            "lhotse",
            "a folder of Lhotse manifests (recordings, supervisions, cuts)",
            LhotseOptions,
            lambda root, out, manifest, o: export_lhotse(root, out, manifest, o.gzip, o.conversations),
            "turn",
        ),
        ExportTarget(
            "moshi",
            "a moshi-finetune data folder (data.jsonl, stereo WAVs, alignments)",
            MoshiOptions,
            lambda root, out, manifest, o: export_moshi(root, out, manifest, o.main_speaker, o.sample_rate),
            "conversation",
        ),
        ExportTarget(
            "hf",
            "a Hugging Face dataset folder (save_to_disk)",
            HfOptions,
            lambda root, out, manifest, o: export_hf(root, out, manifest, o.undecoded),
        ),
    )
}
