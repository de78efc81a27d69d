"""Speaker-encoder measurements shipped with the package, for the catalogs of the voice presets
(`--voices natural`: Kokoro-82M's 28 English voices), so that a preset casts by measured distance
on its first run instead of spending minutes (about 4 on 2 CPU cores) having every voice speak
the reference sentences. A shipped file is what `voice_embeddings` would have written into the
model cache, under the same key (model hash, voices, sentences, encoder): a catalog that differs
in any of them is measured as before. tests/test_engine_kokoro.py measures a sample of the voices
live and compares.

    python -m synth.presets      # measure the presets' catalogs again (needs their models)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

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


def measure(name: str, config: Any, pipeline: Any) -> Path:
    """Measure the catalog of engine `config` afresh (never from a cache or these files, with
    `pipeline`'s rendering) and write it here as the catalog of `name`; returns the file."""
    import tempfile

    from ..engines import load_engine
    from ..produce.render import TurnRenderer
    from .encoder import catalog_key, voice_embeddings

    engine = load_engine(config)
    key = catalog_key(engine.describe(), engine.voices())
    print(f"{name}: measuring the {len(engine.voices())} voices of {engine.model} ({key})", flush=True)
    renderer = TurnRenderer(engine, pipeline.max_chunk_chars, pipeline.sample_rate)
    SHIPPED.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        voice_embeddings(
            engine, Path(tmp), renderer.render, shipped=False,
            progress=lambda i, n: print(f"  {i}/{n}", end="\r", flush=True),
        )  # fmt: skip
        shutil.copy2(Path(tmp) / "embeddings" / f"{key}.json", SHIPPED / f"{key}.json")
    print(f"\n{name}: wrote {SHIPPED / f'{key}.json'}")
    return SHIPPED / f"{key}.json"
