"""Speaker-encoder measurements shipped with the package, for the catalogs of the voice presets
(`--voices natural`: Kokoro-82M's 28 English voices), so that a preset casts by measured distance
on its first run instead of spending minutes (about 4 on 2 CPU cores) having every voice speak
the reference sentences. A shipped file is what `voice_embeddings` would have written into the
model cache, under the same key (model hash, voices, sentences, encoder): a catalog that differs
in any of them is measured as before. tests/engines/test_kokoro.py measures a sample of the voices
live and compares.

    python -m synth.presets      # measure the presets' catalogs again (needs their models)

The measuring itself is synth.presets.measure_catalog.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SHIPPED = Path(__file__).with_name("measured")


def shipped_embeddings(key: str) -> dict[str, np.ndarray] | None:
    """The shipped embeddings of the catalog with this key (synth.voices.encoder.catalog_key), or
    None."""
    path = SHIPPED / f"{key}.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return {k: np.asarray(v, dtype=np.float32) for k, v in data["voices"].items()}
