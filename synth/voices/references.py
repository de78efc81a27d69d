"""The reference embeddings of the voices a dataset uses, for the speaker score
(synth.quality.speaker): each voice speaking the reference sentences (synth.voices.encoder
.REFERENCE), embedded by the speaker encoder. Taken from the catalog's measurements where the
model cache or the package has them (voice_embeddings' files), else measured for the voices asked
for only (not the whole catalog) and kept in the model cache, one file per voice.

Give an engine without sampling noise (VITS noise 0, as `synth score` loads it): then a voice's
reference is a function of the voice alone, and an independent run on another machine computes
the same one."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..domain import Voice
from ..errors import SynthError
from .encoder import ENCODER, REFERENCE, SpeakerEncoder, catalog_key
from .shipped import shipped_embeddings


def _voice_key(describe: dict[str, Any], voice: Voice) -> str:
    stable = {k: v for k, v in describe.items() if k not in ("device", "model_path", "max_batch")}
    blob = json.dumps([ENCODER, REFERENCE, stable, voice.to_dict()], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def reference_embeddings(
    engine: Any,
    voice_ids: Iterable[str],
    render: Callable[[str, Voice], np.ndarray],
    cache: Path | None = None,
    encoder: SpeakerEncoder | None = None,
) -> dict[str, np.ndarray]:
    """voice id -> reference embedding of each voice asked for; `render` speaks a text in a voice
    at 16 kHz (synth.produce.render.TurnRenderer.render). A SynthError names a voice the
    engine's catalog does not have."""
    catalog = {v.id: v for v in engine.voices()}
    wanted = sorted(set(voice_ids))
    missing = [v for v in wanted if v not in catalog]
    if missing:
        raise SynthError(
            f"voice {missing[0]!r} is not in the loaded engine's catalog ({engine.model}): load the "
            "model the dataset was made with (--model) to measure its voices' references"
        )
    describe = engine.describe()
    known: dict[str, np.ndarray] = {}
    key = catalog_key(describe, list(catalog.values()))
    whole = cache / "embeddings" / f"{key}.json" if cache is not None else None
    if whole is not None and whole.is_file():
        data = json.loads(whole.read_text())
        known = {k: np.asarray(v, dtype=np.float32) for k, v in data["voices"].items()}
    else:
        known = shipped_embeddings(key) or {}
    out = {}
    for vid in wanted:
        if vid in known:
            out[vid] = known[vid]
            continue
        path = cache / "embeddings" / f"voice-{_voice_key(describe, catalog[vid])}.json" if cache else None
        if path is not None and path.is_file():
            out[vid] = np.asarray(json.loads(path.read_text())["embedding"], dtype=np.float32)
            continue
        encoder = encoder or SpeakerEncoder()
        audio = np.concatenate([render(text, catalog[vid]) for text in REFERENCE])
        # as the file keeps it, so a measured and a cached reference are the same numbers
        out[vid] = np.asarray([round(float(x), 6) for x in encoder.embed(audio)], dtype=np.float32)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
            record = {"encoder": ENCODER, "voice": vid, "embedding": [float(x) for x in out[vid]]}
            tmp.write_text(json.dumps(record))
            os.replace(tmp, path)
    return out
