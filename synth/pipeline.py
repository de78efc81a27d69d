"""The pipeline: one Dialog in, one finished Conversation out. The CLI, the server and the tests
all go through this object; it does no file I/O (the writer does)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .assembly import SampleBuilder, assemble, place_turn, provenance
from .audio import SAMPLE_RATE, join, normalize_loudness, resample, trim_silence
from .casting import cast
from .domain import Conversation, Dialog, SynthesizedTurn, Voice
from .engines.base import Engine, SynthesisRequest
from .errors import ConfigError, DialogError
from .text import split_sentences
from .timeline import GapDistribution, Timeline

if TYPE_CHECKING:
    from .asr import AsrCheck


class Stopped(Exception):
    """Synthesis was stopped between sentence chunks because the caller went away."""


@dataclass(frozen=True)
class PipelineConfig:
    """How a dialog becomes a conversation.

    seed: casting and gaps are drawn per conversation from (seed, conversation id).
    gap: the distribution of the pause between turns.
    voice_override: speaker label -> voice id, for every dialog (a dialog's own voices win).
    max_chunk_chars: turns are synthesized in sentence chunks of at most this many characters.
    sample_rate: the dataset's rate (16 kHz, Whisper's)."""

    seed: int = 0
    gap: GapDistribution = field(default_factory=GapDistribution)
    voice_override: Mapping[str, str] = field(default_factory=dict)
    max_chunk_chars: int = 400
    sample_rate: int = SAMPLE_RATE


class Pipeline:
    """Casting, synthesis, audio post-processing and the timeline for one conversation at a time.
    Holds the engine (loaded once) and is safe to share between threads if the engine is."""

    def __init__(
        self,
        engine: Engine,
        config: PipelineConfig = PipelineConfig(),
        sample_builder: SampleBuilder | None = None,
        asr_check: AsrCheck | None = None,
    ):
        self.engine = engine
        self.config = config
        self.sample_builder = sample_builder
        self.asr_check = asr_check
        self.catalog: list[Voice] = engine.voices()
        unknown = sorted(set(config.voice_override.values()) - {v.id for v in self.catalog})
        if unknown:
            raise ConfigError("voice_override", f"unknown voice {unknown[0]!r} (see `synth voices`)")

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the engine's batching worker, if it has one."""
        close = getattr(self.engine, "close", None)
        if close is not None:
            close()

    def cast(self, dialog: Dialog) -> dict[str, Voice]:
        return cast(
            dialog, self.catalog, self.config.seed, self.config.voice_override, self.engine.voice_distance
        )

    def render(self, text: str, voice: Voice, should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        """Speak one turn (see `render_many`)."""
        return self.render_many([(text, voice)], should_stop)[0]

    def render_many(
        self, turns: list[tuple[str, Voice]], should_stop: Callable[[], bool] | None = None
    ) -> list[np.ndarray]:
        """Speak turns in one engine call (a batching engine runs them in one forward pass):
        each turn's sentence chunks are resampled and trimmed, joined with short pauses, then
        loudness-normalized as a whole. With `should_stop` (a caller whose deadline may pass),
        chunks go to the engine one call each and Stopped is raised between them."""
        rate = self.config.sample_rate
        requests, owner = [], []
        for i, (text, voice) in enumerate(turns):
            for chunk in split_sentences(text, self.config.max_chunk_chars):
                requests.append(SynthesisRequest(chunk, voice))
                owner.append(i)
        pieces: list[list[np.ndarray]] = [[] for _ in turns]
        if should_stop is None:
            audios = self.engine.synthesize(requests)
        else:
            audios = []
            for request in requests:
                if should_stop():
                    raise Stopped("the caller stopped waiting (cancelled or past its deadline)")
                audios += self.engine.synthesize([request])
        for i, audio in zip(owner, audios):
            piece = trim_silence(resample(audio.samples, audio.sample_rate, rate), rate, 0.03)
            if piece.size:
                pieces[i].append(piece)
        pad = np.zeros(int(rate * 0.1), dtype=np.float32)
        return [
            normalize_loudness(np.concatenate([pad, join(p, rate), pad]), rate)
            if p
            else np.zeros(0, dtype=np.float32)
            for p in pieces
        ]

    def iter_turns(
        self,
        dialog: Dialog,
        casting: Mapping[str, Voice] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Iterator[SynthesizedTurn]:
        """Yield each turn as soon as it is synthesized, already placed on the timeline;
        `should_stop` is asked between sentence chunks (Stopped is raised when it says so)."""
        casting = casting or self.cast(dialog)
        rendered = (self.render(t.text, casting[t.speaker], should_stop) for t in dialog.turns)
        return self._place(dialog, casting, rendered)

    def _place(
        self, dialog: Dialog, casting: Mapping[str, Voice], rendered: Iterable[np.ndarray]
    ) -> Iterator[SynthesizedTurn]:
        """ASR-check each rendered turn (if asked) and put it on the conversation timeline."""
        timeline = Timeline(self.config.gap, self.config.seed, dialog.conversation_id)
        began = time.perf_counter()
        for i, (turn, audio) in enumerate(zip(dialog.turns, rendered)):
            if audio.size == 0:
                raise DialogError(
                    "the engine produced no audio for this text",
                    dialog.source.describe(),
                    f"turns[{i}].text",
                    dialog.conversation_id,
                )
            extra: dict[str, Any] = {}
            if self.asr_check is not None:
                audio, extra["asr_check"] = self._checked(audio, turn.text, casting[turn.speaker])
            yield place_turn(
                timeline,
                i,
                turn.speaker,
                casting[turn.speaker],
                turn.text,
                audio,
                self.config.sample_rate,
                began,
                extra,
            )
            began = time.perf_counter()

    def _checked(self, audio: np.ndarray, text: str, voice: Voice) -> tuple[np.ndarray, dict[str, Any]]:
        """Transcribe; synthesize again while the word error rate is over the threshold (at most
        `retries` times, only when the engine samples noise); keep the best rendition."""
        from .wer import wer

        check = self.asr_check
        assert check is not None
        noisy = not self.engine.deterministic
        best: tuple[float, np.ndarray, str] | None = None
        attempts = 0
        while True:
            attempts += 1
            hyp = check.recognizer.transcribe(audio).text
            score = wer(text, hyp)
            if best is None or score < best[0]:
                best = (score, audio, hyp)
            if score <= check.threshold or attempts > check.retries or not noisy:
                break
            audio = self.render(text, voice)
        score, audio, hyp = best
        return audio, {
            "wer": round(score, 4),
            "hypothesis": hyp,
            "attempts": attempts,
            "passed": score <= check.threshold,
            **check.recognizer.describe(),
        }

    def assemble(
        self, dialog: Dialog, casting: Mapping[str, Voice], turns: list[SynthesizedTurn]
    ) -> Conversation:
        """Attach what makes the conversation reproducible, and its training samples."""
        extra = provenance(self.config.seed, self.config.sample_rate, self.config.gap, self.engine.describe())
        if self.asr_check is not None:
            wers = [t.extra["asr_check"]["wer"] for t in turns if "asr_check" in t.extra]
            extra["asr_check"] = {
                **self.asr_check.recognizer.describe(),
                "threshold": self.asr_check.threshold,
                "mean_wer": round(sum(wers) / len(wers), 4) if wers else None,
                "failed_turns": [
                    t.turn_id for t in turns if not t.extra.get("asr_check", {}).get("passed", True)
                ],
            }
        return assemble(dialog, casting, turns, extra, self.sample_builder)

    def run(self, dialog: Dialog) -> Conversation:
        """The whole conversation, its turns synthesized in one engine call."""
        casting = self.cast(dialog)
        rendered = self.render_many([(t.text, casting[t.speaker]) for t in dialog.turns])
        return self.assemble(dialog, casting, list(self._place(dialog, casting, rendered)))
