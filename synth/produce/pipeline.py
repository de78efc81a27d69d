"""The pipeline: one Dialog in, one finished Conversation out. The CLI, the server and the tests
all go through this object; it does no file I/O (the writer does)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio import PAUSE_SEC, SAMPLE_RATE, join, normalize_loudness, resample, silence_bounds, trim_silence
from ..dialogs.text import split_sentences
from ..domain import Conversation, ConversationEvent, Dialog, SynthesizedTurn, Voice
from ..engines.base import Engine, SynthesisRequest
from ..errors import ConfigError, DialogError
from ..seeding import conversation_rng
from ..words import Words, WordTiming, regroup, shift
from . import backchannels
from .assembly import SampleBuilder, assemble, place_turn, provenance
from .casting import MIN_DISTANCE, MIN_MEASURED_DISTANCE, cast, is_attribute_request
from .timeline import GapDistribution, Timeline

if TYPE_CHECKING:
    from ..asr.recognizer import AsrCheck


LONG_TURNS = ("split", "reject")
CAST_BY = ("model", "measured")
STREAM_TURNS = 16  # turns per engine call in `run`: batching without holding a whole session
TURN_PAD_SEC = 0.1  # silence before and after each turn's speech


@dataclass(frozen=True)
class Piece:
    """One sentence chunk of a turn: its text, its 16 kHz trimmed audio and its word timings
    (seconds from the chunk's start; None when the engine gives none)."""

    text: str
    audio: np.ndarray
    words: Words | None


class Stopped(Exception):
    """Synthesis was stopped between sentence chunks because the caller went away."""


@dataclass(frozen=True)
class PipelineConfig:
    """How a dialog becomes a conversation.

    seed: casting and gaps are drawn per conversation from (seed, conversation id).
    gap: the distribution of the pause between turns.
    voice_override: speaker label -> voice id or attributes (`gender:female`), for every dialog (a
        dialog's own voices win).
    max_chunk_chars: turns are synthesized in sentence chunks of at most this many characters.
    sample_rate: the dataset's rate (16 kHz, Whisper's).
    max_turn_sec: the longest a turn may be (the speech profile's limit, e.g. 30 s for
        LLaMA-Omni's Whisper window); None: no limit.
    long_turns: what to do with a longer turn: 'split' it at sentence boundaries into turns
        that fit, or 'reject' the dialog with a message naming the turn.
    backchannels: the chance that a listener backchannels ("mm-hm") at each opportunity in the
        speaker's longer turns (synth.backchannels); 0: none, the classic layout.
    cast_by: 'model' casts by the engine's own voice distance; 'measured' by distances between
        speaker-encoder embeddings of every voice (computed once per model, kept in voice_cache).
    min_voice_distance: how far apart the speakers of a conversation are kept (None: 0.22 for
        'model', 0.3 for 'measured').
    voice_cache: where measured embeddings are kept (None: the model cache)."""

    seed: int = 0
    gap: GapDistribution = field(default_factory=GapDistribution)
    voice_override: Mapping[str, str] = field(default_factory=dict)
    max_chunk_chars: int = 400
    sample_rate: int = SAMPLE_RATE
    max_turn_sec: float | None = None
    long_turns: str = "split"
    backchannels: float = 0.0
    cast_by: str = "model"
    min_voice_distance: float | None = None
    voice_cache: str | None = None

    def __post_init__(self) -> None:
        if self.cast_by not in CAST_BY:
            raise ConfigError("cast_by", f"choose {' or '.join(CAST_BY)}", self.cast_by)
        if not 0.0 <= self.backchannels <= 1.0:
            raise ConfigError("backchannels", "must be a probability between 0 and 1", self.backchannels)
        if self.long_turns not in LONG_TURNS:
            raise ConfigError("long_turns", f"choose {' or '.join(LONG_TURNS)}", self.long_turns)
        if self.max_turn_sec is not None and self.max_turn_sec <= 0:
            raise ConfigError("max_turn_sec", "must be positive", self.max_turn_sec)


class Pipeline:
    """Casting, synthesis, audio post-processing and the timeline for one conversation at a time.
    Holds the engine (loaded once) and is safe to share between threads if the engine is."""

    def __init__(
        self,
        engine: Engine,
        config: PipelineConfig = PipelineConfig(),
        sample_builder: SampleBuilder | None = None,
        asr_check: AsrCheck | None = None,
        distance: Callable[[Voice, Voice], float] | None = None,
    ):
        """`distance`: how apart two voices sound, for casting (default: the engine's, or
        measured when config.cast_by says so; pass one in to measure a catalog only once)."""
        self.engine = engine
        self.config = config
        self.sample_builder = sample_builder
        self.asr_check = asr_check
        self.catalog: list[Voice] = engine.voices()
        self.distance = distance or casting_distance(self)
        ids = {v for v in config.voice_override.values() if not is_attribute_request(v)}
        unknown = sorted(ids - {v.id for v in self.catalog})
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
        measured = self.config.cast_by == "measured"
        floor = self.config.min_voice_distance
        if floor is None:
            floor = MIN_MEASURED_DISTANCE if measured else MIN_DISTANCE
        return cast(dialog, self.catalog, self.config.seed, self.config.voice_override, self.distance, floor)

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
        return [self._finish(ps)[0] for ps in self._pieces(turns, should_stop)]

    def _pieces(
        self, turns: list[tuple[str, Voice]], should_stop: Callable[[], bool] | None = None
    ) -> list[list[Piece]]:
        """Per turn, its sentence chunks as 16 kHz trimmed audio with their word timings."""
        rate = self.config.sample_rate
        requests, owner = [], []
        for i, (text, voice) in enumerate(turns):
            for chunk in split_sentences(text, self.config.max_chunk_chars):
                requests.append(SynthesisRequest(chunk, voice))
                owner.append(i)
        pieces: list[list[Piece]] = [[] for _ in turns]
        if should_stop is None:
            audios = self.engine.synthesize(requests)
        else:
            audios = []
            for request in requests:
                if should_stop():
                    raise Stopped("the caller stopped waiting (cancelled or past its deadline)")
                audios += self.engine.synthesize([request])
        for i, request, audio in zip(owner, requests, audios):
            full = resample(audio.samples, audio.sample_rate, rate)
            lo, hi = silence_bounds(full, rate, 0.03)
            words = None if audio.words is None else shift(audio.words, -lo / rate, 0.0, (hi - lo) / rate)
            pieces[i].append(Piece(request.text, full[lo:hi], words))
        return pieces

    def _finish(self, pieces: list[Piece]) -> tuple[np.ndarray, Words | None]:
        """A turn's audio from its chunks (short pauses between, padding around, loudness) and
        its word timings from theirs (None unless every chunk has them). A chunk the engine
        left silent keeps its words, zero-length, where it would have been."""
        rate = self.config.sample_rate
        spoken = [p.audio for p in pieces if p.audio.size]
        if not spoken:
            return np.zeros(0, dtype=np.float32), None
        pad_n, pause_n = int(rate * TURN_PAD_SEC), int(rate * PAUSE_SEC)
        pad = np.zeros(pad_n, dtype=np.float32)
        audio = normalize_loudness(np.concatenate([pad, join(spoken, rate), pad]), rate)
        if any(p.words is None for p in pieces):
            return audio, None
        words: list[WordTiming] = []
        at, first = pad_n, True
        for p in pieces:
            if p.audio.size and not first:
                at += pause_n
            assert p.words is not None
            words += shift(p.words, at / rate, at / rate, (at + p.audio.size) / rate)
            if p.audio.size:
                at += p.audio.size
                first = False
        return audio, regroup(" ".join(p.text for p in pieces), words)

    def _parts(
        self,
        pieces: list[Piece],
        where: str,
        field: str,
        cid: str,
    ) -> list[tuple[str | None, np.ndarray, Words | None]]:
        """A turn as one part (text None: the turn's own), or, when it is longer than
        `max_turn_sec`, as consecutive parts of whole sentences that each fit (long_turns
        'split') or a DialogError (long_turns 'reject')."""
        limit = self.config.max_turn_sec
        whole, words = self._finish(pieces)
        rate = self.config.sample_rate
        if limit is None or whole.shape[0] <= limit * rate:
            return [(None, whole, words)]
        if self.config.long_turns == "reject":
            raise DialogError(
                f"the turn lasts {whole.shape[0] / rate:.1f} s, longer than {limit:g} s "
                "(the speech profile's limit); shorten it or let long turns be split",
                where,
                field,
                cid,
            )
        overhead = int(rate * TURN_PAD_SEC) * 2
        pause = int(rate * PAUSE_SEC)
        groups: list[list[Piece]] = [[]]
        for piece in pieces:
            if piece.audio.shape[0] + overhead > limit * rate:
                raise DialogError(
                    f"one sentence lasts {piece.audio.shape[0] / rate:.1f} s, longer than "
                    f"{limit:g} s, so the turn cannot be split to fit: {piece.text[:60]!r}",
                    where,
                    field,
                    cid,
                )
            group = groups[-1]
            size = sum(p.audio.shape[0] for p in group) + pause * len(group) + piece.audio.shape[0] + overhead
            if group and size > limit * rate:
                groups.append([])
            groups[-1].append(piece)
        return [(" ".join(p.text for p in g), *self._finish(g)) for g in groups]

    def iter_turns(
        self,
        dialog: Dialog,
        casting: Mapping[str, Voice] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Iterator[SynthesizedTurn]:
        """Yield each turn as soon as it is synthesized, already placed on the timeline;
        `should_stop` is asked between sentence chunks (Stopped is raised when it says so)."""
        casting = casting or self.cast(dialog)
        rendered = (self._pieces([(t.text, casting[t.speaker])], should_stop)[0] for t in dialog.turns)
        return self._place(dialog, casting, rendered)

    def _place(
        self,
        dialog: Dialog,
        casting: Mapping[str, Voice],
        rendered: Iterable[list[Piece]],
    ) -> Iterator[SynthesizedTurn]:
        """Split each rendered turn if it is too long for the speech profile, ASR-check it (if
        asked) and put it on the conversation timeline. Turn ids count the parts."""
        timeline = Timeline(self.config.gap, self.config.seed, dialog.conversation_id)
        began = time.perf_counter()
        turn_id = 0
        where = dialog.source.describe()
        for i, (turn, pieces) in enumerate(zip(dialog.turns, rendered)):
            field = f"turns[{i}].text"
            if not any(p.audio.size for p in pieces):
                raise DialogError(
                    "the engine produced no audio for this text", where, field, dialog.conversation_id
                )
            join = dialog.join_pause_sec if dialog.starts_segment(i) else None
            parts = self._parts(pieces, where, field, dialog.conversation_id)
            for k, (text, audio, words) in enumerate(parts):
                extra: dict[str, Any] = {}
                text = text or turn.text
                if self.asr_check is not None:
                    audio, words, extra["asr_check"] = self._checked(
                        audio, words, text, casting[turn.speaker]
                    )
                yield place_turn(
                    timeline,
                    turn_id,
                    turn.speaker,
                    casting[turn.speaker],
                    text,
                    audio,
                    self.config.sample_rate,
                    began,
                    extra,
                    source_turn=i,
                    gap_sec=join if k == 0 else None,
                    words=words,
                )
                turn_id += 1
                began = time.perf_counter()

    def _checked(
        self, audio: np.ndarray, words: Words | None, text: str, voice: Voice
    ) -> tuple[np.ndarray, Words | None, dict[str, Any]]:
        """Transcribe; synthesize again while the word error rate is over the threshold (at most
        `retries` times, only when the engine samples noise); keep the best rendition."""
        from ..asr.wer import wer

        check = self.asr_check
        assert check is not None
        noisy = not self.engine.deterministic
        best: tuple[float, np.ndarray, Words | None, str] | None = None
        attempts = 0
        while True:
            attempts += 1
            hyp = check.recognizer.transcribe(audio).text
            score = wer(text, hyp)
            if best is None or score < best[0]:
                best = (score, audio, words, hyp)
            if score <= check.threshold or attempts > check.retries or not noisy:
                break
            audio, words = self._finish(self._pieces([(text, voice)])[0])
        score, audio, words, hyp = best
        return (
            audio,
            words,
            {
                "wer": round(score, 4),
                "hypothesis": hyp,
                "attempts": attempts,
                "passed": score <= check.threshold,
                **check.recognizer.describe(),
            },
        )

    def assemble(
        self, dialog: Dialog, casting: Mapping[str, Voice], turns: list[SynthesizedTurn]
    ) -> Conversation:
        """Attach what makes the conversation reproducible, and its training samples."""
        extra = provenance(self.config.seed, self.config.sample_rate, self.config.gap, self.engine.describe())
        if turns and all(t.words is not None for t in turns):
            extra["word_timing"] = {"method": "engine-durations", "model": self.engine.model}
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
        events = self._backchannels(dialog, casting, turns)
        if self.config.backchannels:
            extra["backchannels"] = {"rate": self.config.backchannels, "count": len(events)}
        return assemble(dialog, casting, turns, extra, self.sample_builder, events)

    def _backchannels(
        self, dialog: Dialog, casting: Mapping[str, Voice], turns: list[SynthesizedTurn]
    ) -> list[ConversationEvent]:
        """The listeners' backchannels, spoken in their voices in one engine call; one that would
        run into the listener's own speech is left out."""
        rng = conversation_rng(self.config.seed, dialog.conversation_id, "backchannels")
        planned = backchannels.plan(turns, dialog.speakers, self.config.backchannels, rng)
        if not planned:
            return []
        rate = self.config.sample_rate
        spoken = self._pieces([(p.text, casting[p.listener]) for p in planned])
        events: list[ConversationEvent] = []
        taken: dict[str, list[tuple[float, float]]] = {}
        for p, pieces in zip(planned, spoken):
            audio = trim_silence(self._finish(pieces)[0], rate, 0.02)
            mine = taken.setdefault(p.listener, [])
            if not audio.size or not backchannels.fits(p.start, audio.size / rate, p.listener, turns, mine):
                continue
            mine.append((p.start, p.start + audio.size / rate))
            events.append(
                ConversationEvent(
                    "backchannel", p.listener, casting[p.listener], p.text, p.start, audio, rate
                )
            )
        return events

    def run(
        self,
        dialog: Dialog,
        sink: Callable[[SynthesizedTurn], SynthesizedTurn] | None = None,
    ) -> Conversation:
        """The whole conversation: its turns synthesized STREAM_TURNS at a time (one engine call
        each, batched), each handed to `sink` as soon as it is placed (the writer's staging, which
        writes it and lets its audio go), so a long session needs the memory of a short one."""
        casting = self.cast(dialog)
        turns = [(t.text, casting[t.speaker]) for t in dialog.turns]
        rendered = itertools.chain.from_iterable(
            self._pieces(turns[k : k + STREAM_TURNS]) for k in range(0, len(turns), STREAM_TURNS)
        )
        placed = [sink(t) if sink else t for t in self._place(dialog, casting, rendered)]
        return self.assemble(dialog, casting, placed)

    produce = run  # the runner's streaming producer interface: produce(item, sink)


def casting_distance(pipeline: Pipeline) -> Callable[[Voice, Voice], float]:
    """The voice distance casting uses: the engine's own, or (cast_by 'measured') distances
    between speaker-encoder embeddings of every voice, read from the cache or measured once by
    having each voice speak the reference sentences."""
    engine, config = pipeline.engine, pipeline.config
    if config.cast_by != "measured":
        return engine.voice_distance
    from ..engines.piper_voices import default_cache
    from ..voices.encoder import MeasuredDistance, voice_embeddings

    cache = Path(config.voice_cache).expanduser() if config.voice_cache else default_cache()
    return MeasuredDistance(voice_embeddings(engine, cache, pipeline.render), engine.voice_distance)
