"""The Hugging Face copy of the embedded Llama 3 vocabulary that the tests compare against, made
at test time (no third-party vocabulary files are committed)."""

from pathlib import Path

from synth.tokenizer import export_llama3_hf


def build_llama3_tokenizer_dir(folder: Path) -> Path:
    return export_llama3_hf(folder)
