"""Speaker-encoder embeddings of voices and measured distances. The encoder itself (resemblyzer's
GE2E d-vector, offline) lives in synth.quality.speaker_encoder, below produce, so that the
quality scores use it too; its names are re-exported here.

Voices are embedded from a few reference sentences each, once per model: the embeddings are kept
as JSON in the model cache (`<cache>/embeddings/`), keyed by the model, the voices' parameters,
the sentences and the encoder, so a catalog is measured once and casting reads the file; the
voice presets' catalogs come measured with the package (synth.voices.shipped)."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..domain import Voice
from ..quality.speaker_encoder import ENCODER, SpeakerEncoder, cosine_distance, weights_path

__all__ = [
    "ENCODER",
    "REFERENCE",
    "MeasuredDistance",
    "SpeakerEncoder",
    "catalog_key",
    "cosine_distance",
    "voice_embeddings",
    "weights_path",
]

REFERENCE = (
    "The quick brown fox jumps over the lazy dog near the riverbank.",
    "Could you please tell me how long the museum stays open tonight?",
    "I honestly think we should leave a little earlier tomorrow morning.",
)


def catalog_key(describe: dict[str, Any], voices: Sequence[Voice]) -> str:
    """What the embeddings of a catalog depend on (model, voices, sentences, encoder)."""
    stable = {k: v for k, v in describe.items() if k not in ("device", "model_path", "max_batch")}
    blob = json.dumps(
        [ENCODER, REFERENCE, stable, [v.to_dict() for v in voices]], sort_keys=True, default=str
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def voice_embeddings(
    engine: Any,
    cache: Path | None,
    render: Callable[[str, Voice], np.ndarray],
    encoder: SpeakerEncoder | None = None,
    progress: Callable[[int, int], None] | None = None,
    shipped: bool = True,
) -> dict[str, np.ndarray]:
    """Every catalog voice's embedding, from the cache when it has them, else from the package's
    measurements of the presets' catalogs (`shipped`; synth.voices.shipped), else computed (each
    voice speaking the reference sentences, `render` giving 16 kHz audio) and stored."""
    from .shipped import shipped_embeddings

    voices = engine.voices()
    key = catalog_key(engine.describe(), voices)
    path = None
    if cache is not None:
        path = cache / "embeddings" / f"{key}.json"
        if path.is_file():
            data = json.loads(path.read_text())
            return {k: np.asarray(v, dtype=np.float32) for k, v in data["voices"].items()}
    known = shipped_embeddings(key) if shipped else None
    if known is not None:
        return known
    encoder = encoder or SpeakerEncoder()
    out = {}
    for i, voice in enumerate(voices):
        audio = np.concatenate([render(text, voice) for text in REFERENCE])
        out[voice.id] = encoder.embed(audio)
        if progress is not None:
            progress(i + 1, len(voices))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        record = {
            "encoder": ENCODER,
            "model": engine.model,
            "sentences": list(REFERENCE),
            "voices": {k: [round(float(x), 6) for x in v] for k, v in out.items()},
        }
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)
    return out


class MeasuredDistance:
    """Voice distance from measured embeddings (falls back to `fallback` for a voice not
    measured)."""

    def __init__(self, embeddings: dict[str, np.ndarray], fallback: Callable[[Voice, Voice], float]):
        self.embeddings, self.fallback = embeddings, fallback

    def __call__(self, a: Voice, b: Voice) -> float:
        ea, eb = self.embeddings.get(a.id), self.embeddings.get(b.id)
        if ea is None or eb is None:
            return self.fallback(a, b)
        return cosine_distance(ea, eb)
