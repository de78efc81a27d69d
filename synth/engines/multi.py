"""Several models in one catalog: every voice of every model, each request sent to the engine
that owns its voice (one call per engine, so each still batches its share). Casting spreads over
all of them; a voice keeps its engine and model in metadata."""

from __future__ import annotations

from collections.abc import Sequence

from ..domain import Voice
from ..errors import ConfigError
from .base import Engine, EngineAudio, SynthesisRequest


class MultiEngine:
    """One engine over several models: their voices in one catalog, each request made by the engine
    that owns its voice."""

    name = "multi"

    def __init__(self, engines: Sequence[Engine]):
        if not engines:
            raise ConfigError("model", "at least one model is needed")
        self.engines = list(engines)
        self.model = "+".join(e.model for e in self.engines)
        self._owner: dict[str, Engine] = {}
        self._voices: list[Voice] = []
        for engine in self.engines:
            for voice in engine.voices():
                if voice.id in self._owner:
                    raise ConfigError(
                        "model",
                        f"voice id {voice.id!r} is in two models ({self._owner[voice.id].model}, {engine.model})",
                    )
                self._owner[voice.id] = engine
                self._voices.append(voice)

    def voices(self) -> list[Voice]:
        return list(self._voices)

    def synthesize(self, requests: Sequence[SynthesisRequest]) -> list[EngineAudio]:
        out: list[EngineAudio | None] = [None] * len(requests)
        by_engine: dict[int, list[int]] = {}
        for i, request in enumerate(requests):
            owner = self._owner.get(request.voice.id)
            if owner is None:
                raise ConfigError("voice", "not in the catalog", request.voice.id)
            by_engine.setdefault(id(owner), []).append(i)
        for engine in self.engines:
            index = by_engine.get(id(engine), [])
            if index:
                for i, audio in zip(index, engine.synthesize([requests[i] for i in index])):
                    out[i] = audio
        return [a for a in out if a is not None]

    def describe(self) -> dict[str, object]:
        return {"engine": self.name, "model": self.model, "engines": [e.describe() for e in self.engines]}

    @property
    def deterministic(self) -> bool:
        return all(e.deterministic for e in self.engines)

    def voice_distance(self, a: Voice, b: Voice) -> float:
        """Within one model, that model's measure; voices of two models are different people."""
        ea, eb = self._owner.get(a.id), self._owner.get(b.id)
        if ea is not None and ea is eb:
            return ea.voice_distance(a, b)
        return 1.0

    def close(self) -> None:
        for engine in self.engines:
            close = getattr(engine, "close", None)
            if close is not None:
                close()
