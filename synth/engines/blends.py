"""Blended voices: new speakers mixed from two or more of a model's speaker embeddings. A recipe
names its parents and weights; its id is derived from them, so it is stable across runs and
machines. Recipes live in a JSON file (no pickle) that `synth voices --blend N` writes after
keeping only the candidates the speaker encoder finds distinct and the ASR finds intelligible."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..domain import Voice
from ..errors import ConfigError


@dataclass(frozen=True)
class Blend:
    """A recipe for a blended voice: its id and its parents' weights."""

    id: str
    parents: tuple[tuple[str, float], ...]  # (speaker, weight), weights summing to 1
    report: dict[str, Any] | None = None  # how it was judged: distances, WER

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "parents": [[p, w] for p, w in self.parents]}
        if self.report:
            out["report"] = self.report
        return out


def blend_id(prefix: str, parents: tuple[tuple[str, float], ...]) -> str:
    """`PREFIX-mix-HASH`, the hash of the sorted parents: the same recipe, the same id anywhere."""
    digest = hashlib.sha256(json.dumps(sorted(parents)).encode()).hexdigest()[:8]
    return f"{prefix}-mix-{digest}"


def blended_voice(
    recipe: Blend, engine: str, model: str, params: Mapping[str, Any], meta: Mapping[str, Any] | None = None
) -> Voice:
    """A blend as a voice of its engine, made the same way by every engine: the recipe's id is its
    id and its own base speaker (casting tells it from its parents), `meta` the engine's
    descriptions (pitch, accent), the recipe last, under `blend`."""
    return Voice(
        id=recipe.id,
        engine=engine,
        model=model,
        speaker=recipe.id,
        params=dict(params),
        meta={"base_speaker": recipe.id, **(meta or {}), "blend": [[p, w] for p, w in recipe.parents]},
    )


def propose(
    prefix: str,
    speakers: list[str],
    count: int,
    seed: int = 0,
    groups: Sequence[Sequence[str]] | None = None,
) -> list[Blend]:
    """`count` distinct candidate mixes of 2 or 3 speakers with weights drawn from a flat
    Dirichlet (no parent under 0.2), seeded. With `groups` (e.g. the speakers of one gender and
    accent each), a mix's parents all come from one group, drawn in proportion to its size, so
    that the mix keeps the attributes its parents share."""
    pools = [list(g) for g in groups if len(g) >= 2] if groups is not None else [speakers]
    if not pools or len(pools[0]) < 2:
        raise ConfigError("blend", "a model needs at least two speakers to blend", len(speakers))
    rng = random.Random(seed)
    out: dict[str, Blend] = {}
    tries = 0
    while len(out) < count and tries < count * 50:
        tries += 1
        pool = pools[0] if len(pools) == 1 else rng.choices(pools, weights=[len(p) for p in pools])[0]
        k = 2 if len(pool) < 3 or rng.random() < 0.6 else 3
        names = rng.sample(pool, k)
        raw = [rng.gammavariate(1.0, 1.0) for _ in names]
        weights = [round(w / sum(raw), 3) for w in raw]
        if min(weights) < 0.2:
            continue
        weights[-1] = round(1.0 - sum(weights[:-1]), 3)
        parents = tuple(sorted(zip(names, weights)))
        blend = Blend(blend_id(prefix, parents), parents)
        out.setdefault(blend.id, blend)
    return list(out.values())


def read_blends(path: Path) -> list[Blend]:
    """The recipes of a blends file; a ConfigError naming `blends` for a missing or bad file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [
            Blend(str(b["id"]), tuple((str(p), float(w)) for p, w in b["parents"]), b.get("report"))
            for b in data["blends"]
        ]
    except FileNotFoundError:
        raise ConfigError("blends", "no such file", str(path)) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError("blends", f"not a blends file ({exc})", str(path)) from None


def write_blends(path: Path, model: str, blends: list[Blend]) -> None:
    """Write a blends file for `model` (whole or not at all: a temporary file renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"model": model, "blends": [b.to_dict() for b in blends]}, indent=2) + "\n")
    tmp.replace(path)
