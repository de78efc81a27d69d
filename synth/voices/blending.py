"""Making blended voices worth keeping: candidate mixes of a model's speakers (synth.engines.
blends) are spoken, embedded by the speaker encoder and transcribed; a candidate is kept only
when it is at least `min_distance` from every voice of the catalog and from every blend already
kept, and the ASR understands it (word error rate at most `max_wer`). Kokoro's mixes are weighted
sums of its voices' style packs, drawn within one accent and gender so that a mix keeps both."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..domain import Voice
from ..engines import CoquiConfig, KokoroConfig, PiperConfig, load_engine
from ..engines.blends import Blend, propose, write_blends
from ..errors import ConfigError
from ..produce.pipeline import Pipeline, PipelineConfig
from .encoder import REFERENCE, SpeakerEncoder, cosine_distance, voice_embeddings


def blend_parents(voices: list[Voice], engine: str) -> tuple[str, list[str], list[list[str]] | None]:
    """The id prefix of a model's blends, the speakers that can be mixed and, for Kokoro, the
    groups (accent and gender) a mix's parents are drawn from."""
    if engine == "kokoro":
        pure = [v for v in voices if not v.meta.get("blend")]
        groups: dict[tuple[str, str], list[str]] = {}
        for v in pure:
            groups.setdefault((str(v.meta.get("accent")), str(v.meta.get("gender"))), []).append(v.id)
        return "kokoro", [v.id for v in pure], list(groups.values())
    speakers = list(dict.fromkeys(v.speaker for v in voices if v.params.get("speaker_index") is not None))
    prefix = voices[0].id.rsplit("-", 1)[0] if voices else "blend"
    return prefix, speakers, None


def make_blends(
    config: CoquiConfig | PiperConfig | KokoroConfig,
    count: int,
    out: Path,
    min_distance: float = 0.3,
    max_wer: float = 0.3,
    seed: int = 0,
    recognizer: Any = None,
    progress: Callable[[str], None] | None = None,
    cache: Path | None = None,
) -> list[Blend]:
    """Propose, judge and keep up to `count` blends of `config`'s model; write them to `out`.
    The catalog's own embeddings come from `cache` when `--measure` or measured casting already
    computed them (synth.voices.encoder.voice_embeddings)."""
    if not isinstance(config, (CoquiConfig, PiperConfig, KokoroConfig)):
        raise ConfigError("blend", "blending needs a Coqui VITS, a multi-speaker Piper model or Kokoro")
    from ..asr.wer import wer

    base = load_engine(replace(config, blends=None))
    prefix, speakers, groups = blend_parents(base.voices(), base.name)
    candidates = propose(prefix, speakers, count * 3, seed, groups)
    with tempfile.TemporaryDirectory(prefix="synth-blend-") as tmp:
        trial = Path(tmp) / "candidates.json"
        write_blends(trial, base.model, candidates)
        engine = load_engine(replace(config, blends=str(trial)))
    pipeline = Pipeline(engine, PipelineConfig())
    encoder = SpeakerEncoder()
    by_id = {v.id: v for v in engine.voices()}
    catalog = voice_embeddings(base, cache, pipeline.render, encoder)
    if recognizer is None:
        from ..asr.recognizer import Recognizer

        recognizer = Recognizer()
    kept: list[Blend] = []
    kept_embeddings: dict[str, Any] = {}
    for blend in candidates:
        if len(kept) == count:
            break
        spoken = [pipeline.render(text, by_id[blend.id]) for text in REFERENCE]
        e = encoder.embed(np.concatenate(spoken))
        others = {**catalog, **kept_embeddings}
        nearest_id = min(others, key=lambda k: cosine_distance(e, others[k]))
        nearest = cosine_distance(e, others[nearest_id])
        error = wer(REFERENCE[0], recognizer.transcribe(spoken[0]).text)
        verdict = nearest >= min_distance and error <= max_wer
        if progress is not None:
            progress(
                f"{blend.id}: nearest {nearest_id} {nearest:.3f}, WER {error:.2f} -> {'kept' if verdict else 'no'}"
            )
        if verdict:
            report = {"nearest": nearest_id, "distance": round(nearest, 4), "wer": round(error, 4)}
            kept.append(replace(blend, report=report))
            kept_embeddings[blend.id] = e
    write_blends(out, base.model, kept)
    if cache is not None and kept:
        # the catalog with its kept blends is measured already: casting with it reads this
        remember(load_engine(replace(config, blends=str(out))), cache, {**catalog, **kept_embeddings})
    return kept


def remember(engine: Any, cache: Path, embeddings: dict[str, np.ndarray]) -> Path:
    """Store embeddings measured elsewhere (a blend's judging) where voice_embeddings looks for
    this engine's catalog, in its record format."""
    import json
    import os
    import uuid

    from .encoder import ENCODER, catalog_key

    voices = engine.voices()
    missing = [v.id for v in voices if v.id not in embeddings]
    if missing:
        raise ConfigError("blend", f"no embedding measured for {missing[0]!r}")
    path = cache / "embeddings" / f"{catalog_key(engine.describe(), voices)}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "encoder": ENCODER,
        "model": engine.model,
        "sentences": list(REFERENCE),
        "voices": {v.id: [round(float(x), 6) for x in embeddings[v.id]] for v in voices},
    }
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)
    return path
