"""The pipeline: one Dialog in, one finished Conversation out, by orchestrating the stages of
synth.produce: casting (speaker -> voice), rendering each turn (render), splitting turns too long
for the speech profile (long_turns), the ASR retry (asr_retry), placing turns on the timeline
(timeline), the listeners' backchannels (backchannels) and assembly with provenance and samples
(assembly). The CLI, the server and the tests all go through this object; it does no file I/O
(the writer does)."""

from __future__ import annotations

import functools
import itertools
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio import SAMPLE_RATE, resample
from ..dialogs.text import foreign_script
from ..domain import Conversation, Dialog, SynthesizedTurn, Voice
from ..engines.base import Engine
from ..errors import ConfigError, DialogError, Stopped, VoiceError
from ..options import option, setting
from ..quality import TurnAudio, in_sample
from ..samples.builder import BuildsSamples
from ..seeding import conversation_rng, noise_seed
from . import asr_retry, backchannels
from .assembly import assemble, place_turn, provenance
from .casting import (
    MIN_DISTANCE,
    MIN_MEASURED_DISTANCE,
    cast,
    is_attribute_request,
    matches,
    parse_attributes,
)
from .gates import Judge, Verdict, best_take, can_vary, gate_failed, take_voice
from .long_turns import LONG_TURNS, turn_parts
from .probes import ProbeConfig, ProbeSpeaker, attach
from .render import Piece, Spoken, TurnRenderer
from .timeline import GapDistribution, Timeline

if TYPE_CHECKING:
    from ..asr.recognizer import AsrCheck

__all__ = ["CAST_BY", "LONG_TURNS", "STREAM_TURNS", "Pipeline", "PipelineConfig", "Stopped"]

CAST_BY = ("model", "measured")
STREAM_TURNS = 16  # turns per engine call in `run`: batching without holding a whole session
# threads that score turns (the gates) while the next turns are synthesized
SCORE_WORKERS = max(1, min(4, len(os.sched_getaffinity(0)) // 2))  # the cores this process may use


def parse_voice_override(items: list[str]) -> dict[str, str]:
    """['A=joe-vt1.04', 'B=gender:female'] -> {'A': 'joe-vt1.04', 'B': 'gender:female'}."""
    out: dict[str, str] = {}
    for item in items:
        speaker, sep, voice = item.partition("=")
        if not sep or not speaker or not voice:
            raise ConfigError("voice_override", "expected SPEAKER=VOICE", item)
        out[speaker] = voice
    return out


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
    voice_cache: where measured embeddings are kept (None: the model cache).
    fullband_rate: also render every turn at this rate, resampled once from the engine's own
        audio, for the full-band conversation audio (set from ConversationAudioConfig)."""

    seed: int = option(0, help="seed for casting, turn gaps and backchannels", env="SEED")
    gap: GapDistribution = option(
        factory=GapDistribution,
        parse=GapDistribution.parse,
        text=GapDistribution.spec,
        env="GAP",
        help="offset from the end of one turn to the start of the next, in seconds: fixed:X, "
        "uniform:LO,HI, normal:MEAN,STD or lognormal:MEDIAN,SIGMA (clipped to [0.05, 2]), or "
        "'conversational' (normal:0.2,0.45 clipped to [-0.8, 2]: about a third of speaker changes "
        "overlap, as in real conversation; see docs/full-duplex.md)",
    )
    voice_override: Mapping[str, str] = option(
        factory=dict,
        flag="--voice",
        repeat=True,
        metavar="SPEAKER=VOICE",
        parse=parse_voice_override,
        help="cast SPEAKER to VOICE in every dialog (repeatable; see `synth voices`), or to a voice "
        "with attributes: A=gender:female, B=gender:male,accent:uk",
    )
    max_chunk_chars: int = 400
    sample_rate: int = SAMPLE_RATE
    max_turn_sec: float | None = None
    long_turns: str = option(
        "split",
        choices=LONG_TURNS,
        help="a turn longer than the speech profile allows (llama-omni: 30 s): split it at sentence "
        "boundaries into turns that fit, or reject the dialog",
    )
    backchannels: float = option(
        0.0,
        metavar="P",
        help="chance of a listener's backchannel ('mm-hm') at each opportunity in a speaker's longer "
        "turns (one per turn of 2 s, one more every 5 s); listed as events, heard in "
        "conversation.wav, never turns",
    )
    cast_by: str = option(
        "model",
        choices=CAST_BY,
        help="how apart voices sound: the model's own measure, or distances between speaker-encoder "
        "embeddings of every voice (computed once per model, kept in --model-cache)",
    )
    min_voice_distance: float | None = option(
        None,
        help="keep the speakers of a conversation at least this far apart when the catalog allows "
        "(default 0.22 by the model, 0.3 measured)",
    )
    voice_per_person: bool = option(
        False,
        when_set=True,
        help="a speaker's label names a person, who keeps one voice in every conversation of the source "
        "where it is free (REALTALK's people appear in several files; see docs/memory.md)",
    )
    voice_cache: str | None = setting(None, run=True)  # where, not what: never in dataset.json
    fullband_rate: int | None = None

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
    """Casting, rendering, the timeline and assembly for one conversation at a time. Holds the
    engine (loaded once) and is safe to share between threads if the engine is."""

    def __init__(
        self,
        engine: Engine,
        config: PipelineConfig = PipelineConfig(),
        sample_builder: BuildsSamples | None = None,
        asr_check: AsrCheck | None = None,
        distance: Callable[[Voice, Voice], float] | None = None,
        probes: ProbeConfig = ProbeConfig(),
        main_speaker: str | None = None,
        judge: Judge | None = None,
    ):
        """`distance`: how apart two voices sound, for casting (default: the engine's own; for
        cast_by 'measured' pass synth.api.casting_distance's, which build_pipeline does).
        `probes`: what becomes of a coherent conversation's questions (synth.produce.probes);
        `main_speaker`: who speaks the probes' answers (the conversation audio's main side);
        `judge`: the quality scorers and gates (synth.produce.gates), run on SCORE_WORKERS threads
        while the next turns are synthesized."""
        self.engine = engine
        self.judge = judge
        self._pool = (
            ThreadPoolExecutor(SCORE_WORKERS, thread_name_prefix="synth-score") if judge is not None else None
        )
        self.config = config
        self.sample_builder = sample_builder
        self.asr_check = asr_check
        self.renderer = TurnRenderer(engine, config.max_chunk_chars, config.sample_rate, config.fullband_rate)
        self.catalog: list[Voice] = engine.voices()
        if distance is None and config.cast_by == "measured":
            raise ConfigError(
                "cast_by",
                "measured casting needs the measured voice distances: build the pipeline with "
                "synth.build_pipeline, or pass distance=synth.api.casting_distance(engine, config)",
                config.cast_by,
            )
        self.distance = distance or engine.voice_distance
        self.probes = ProbeSpeaker(self.renderer, probes, self.cast, config.seed)
        self.main_speaker = main_speaker
        ids = {v for v in config.voice_override.values() if not is_attribute_request(v)}
        unknown = sorted(ids - {v.id for v in self.catalog})
        if unknown:
            raise ConfigError("voice_override", f"unknown voice {unknown[0]!r} (see `synth voices`)")
        for speaker, asked in config.voice_override.items():
            if not is_attribute_request(asked):
                continue
            try:
                wanted = parse_attributes(asked)
            except VoiceError as exc:
                raise ConfigError("voice_override", str(exc).strip("'\""), f"{speaker}={asked}") from None
            if not any(matches(v, wanted) for v in self.catalog):
                raise ConfigError(
                    "voice_override",
                    "no voice of the catalog has these attributes (see `synth voices`: they are in each "
                    "voice's meta)",
                    f"{speaker}={asked}",
                )

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the scoring threads and the engine's batching worker, if it has one."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        close = getattr(self.engine, "close", None)
        if close is not None:
            close()

    def cast(self, dialog: Dialog) -> dict[str, Voice]:
        measured = self.config.cast_by == "measured"
        floor = self.config.min_voice_distance
        if floor is None:
            floor = MIN_MEASURED_DISTANCE if measured else MIN_DISTANCE
        return cast(
            dialog,
            self.catalog,
            self.config.seed,
            self.config.voice_override,
            self.distance,
            floor,
            self.config.voice_per_person,
        )

    def check_speakable(self, dialog: Dialog, casting: Mapping[str, Voice], first: int = 0) -> None:
        """A DialogError naming the first turn (from `first`) whose letters its voice cannot
        read (synth.dialogs.text.foreign_script), before anything is synthesized."""
        for i, turn in enumerate(dialog.turns[first:], start=first):
            problem = foreign_script(turn.text, casting[turn.speaker].language)
            if problem:
                where = dialog.source.describe()
                raise DialogError(problem, where, f"turns[{i}].text", dialog.conversation_id)

    def render(self, text: str, voice: Voice, should_stop: Callable[[], bool] | None = None) -> np.ndarray:
        """Speak one turn's text in a voice (synth.produce.render)."""
        return self.renderer.render(text, voice, should_stop)

    def iter_turns(
        self,
        dialog: Dialog,
        casting: Mapping[str, Voice] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Iterator[SynthesizedTurn]:
        """Yield each turn as soon as it is synthesized, already placed on the timeline;
        `should_stop` is asked between sentence chunks (Stopped is raised when it says so)."""
        casting = casting or self.cast(dialog)
        rendered = (
            self.renderer.pieces([(t.text, casting[t.speaker])], should_stop, [self.turn_seed(dialog, i)])[0]
            for i, t in enumerate(dialog.turns)
        )
        return self._place(dialog, casting, rendered)

    def turn_seed(self, dialog: Dialog, index: int) -> int:
        """The noise seed of an input turn's first take (synth.seeding.noise_seed)."""
        return noise_seed(self.config.seed, dialog.conversation_id, f"turn:{index}")

    def take_seed(self, cid: str, key: str, take: int) -> int:
        """The noise seed of a retake (take > 0) of a turn's part `key`, for the quality gates'
        takes and the ASR check's retries alike: each take draws its own noise."""
        return noise_seed(self.config.seed, cid, f"take:{key}:{take}")

    def parts(
        self,
        text: str,
        voice: Voice,
        pieces: list[Piece],
        where: str,
        field: str,
        cid: str,
        speaker: str = "",
        others: tuple[str, ...] = (),
        turn_index: int = 0,
    ) -> list[tuple[str, Spoken, dict[str, Any]]]:
        """One rendered input turn as the turns it becomes: split if it is too long for the speech
        profile, scored and gated (best of the takes) or ASR-checked if asked; (text, spoken,
        extra) each. `speaker`, `others` (the other speakers' voice ids) and `turn_index` (the
        input turn's: the score sample and the takes' seeds) are what scoring needs."""
        if not any(p.audio.size for p in pieces):
            raise DialogError("the engine produced no audio for this text", where, field, cid)
        split = turn_parts(
            self.renderer, pieces, self.config.max_turn_sec, self.config.long_turns, where, field, cid
        )
        judge = self.judge
        scored = judge is not None and in_sample(cid, turn_index, judge.config.score_sample, self.config.seed)
        out = []
        for k, (part_text, spoken) in enumerate(split):
            extra: dict[str, Any] = {}
            part_text = part_text or text
            if scored:
                turn = (part_text, voice, speaker, others, turn_index, f"{field}:{k}")
                spoken, extra = self._gated(spoken, turn, where, field, cid)
            elif self.asr_check is not None:
                seeds = functools.partial(self.take_seed, cid, f"{field}:{k}")
                spoken, extra["asr_check"] = asr_retry.checked(
                    self.asr_check, self.renderer, spoken, part_text, voice, seeds
                )
            out.append((part_text, spoken, extra))
        return out

    def _gated(
        self, spoken: Spoken, turn: tuple[Any, ...], where: str, field: str, cid: str
    ) -> tuple[Spoken, dict[str, Any]]:
        """A turn scored, retaken while it fails a gate (and the ASR check, where both are on),
        the best take kept; its extra (`quality`, and `asr_check`)."""
        judge, check = self.judge, self.asr_check
        assert judge is not None
        text, voice, speaker, others, turn_index, key = turn
        config = judge.config
        takes = config.takes if can_vary(voice, self.engine.deterministic) else 1
        if check is not None and not self.engine.deterministic:
            takes = max(takes, check.retries + 1)

        def retake(k: int) -> Spoken:
            said = take_voice(voice, self.config.seed, cid, key, k)
            return self.renderer.finish(
                self.renderer.pieces([(text, said)], None, [self.take_seed(cid, key, k)])[0]
            )

        rate = self.config.sample_rate

        def verdict(s: Spoken) -> Verdict:
            audio = s.audio if rate == SAMPLE_RATE else resample(s.audio, rate)  # the scorers hear 16 kHz
            v = judge(TurnAudio(audio, text, voice.id, speaker, others, cid, turn_index))
            if check is not None:
                asr = asr_retry.judge(check, s, text)
                v = Verdict(v.record, v.failed + asr.failed, v.rank + asr.rank, {"asr": asr})
            return v

        spoken, best, made, number = best_take(spoken, retake, verdict, takes)
        block = {**best.record, "takes": made, "take": number}
        if not best.passed:
            if config.gate_fail == "reject":
                raise gate_failed(Verdict(block, best.failed), made, where, field, cid)
            block["gate_failed"] = list(best.failed)
        extra: dict[str, Any] = {"quality": block}
        if check is not None:
            extra["asr_check"] = asr_retry.record(check, best.parts["asr"], made)
        return spoken, extra

    def place(
        self,
        timeline: Timeline,
        turn_id: int,
        speaker: str,
        voice: Voice,
        parts: list[tuple[str, Spoken, dict[str, Any]]],
        source_turn: int,
        began: float,
        join_sec: float | None = None,
    ) -> list[SynthesizedTurn]:
        """An input turn's parts put on the conversation timeline from `turn_id` on; `join_sec`:
        the pause before the first (a session's next part)."""
        placed = []
        for k, (text, spoken, extra) in enumerate(parts):
            placed.append(
                place_turn(
                    timeline,
                    turn_id + k,
                    speaker,
                    voice,
                    text,
                    spoken.audio,
                    self.config.sample_rate,
                    began,
                    extra,
                    source_turn=source_turn,
                    gap_sec=join_sec if k == 0 else None,
                    words=spoken.words,
                    fullband=spoken.full,
                )
            )
            began = time.perf_counter()
        return placed

    def _place(
        self,
        dialog: Dialog,
        casting: Mapping[str, Voice],
        rendered: Iterable[list[Piece]],
    ) -> Iterator[SynthesizedTurn]:
        """Each rendered turn as its parts, on the conversation timeline. Turn ids count the
        parts."""
        timeline = Timeline(self.config.gap, self.config.seed, dialog.conversation_id)
        began = time.perf_counter()
        turn_id = 0
        where = dialog.source.describe()
        cid = dialog.conversation_id

        def spoken_parts(i: int, pieces: list[Piece]) -> list[tuple[str, Spoken, dict[str, Any]]]:
            turn = dialog.turns[i]
            voice = casting[turn.speaker]
            others = tuple(sorted({v.id for s, v in casting.items() if s != turn.speaker}))
            parts = self.parts(
                turn.text, voice, pieces, where, f"turns[{i}].text", cid, turn.speaker, others, i
            )
            if turn.meta:  # what the source says of the turn besides its words (an id, an image)
                parts[0][2]["source"] = dict(turn.meta)
            return parts

        for i, parts in self._ahead(enumerate(rendered), spoken_parts):
            turn = dialog.turns[i]
            join = dialog.join_pause_sec if dialog.starts_segment(i) else None
            placed = self.place(timeline, turn_id, turn.speaker, casting[turn.speaker], parts, i, began, join)
            yield from placed
            turn_id += len(placed)
            began = time.perf_counter()

    def _ahead(
        self,
        rendered: Iterable[tuple[int, list[Piece]]],
        work: Callable[[int, list[Piece]], list[tuple[str, Spoken, dict[str, Any]]]],
    ) -> Iterator[tuple[int, list[tuple[str, Spoken, dict[str, Any]]]]]:
        """(i, work(i, pieces)) in order. With scoring on, the work (scoring, retakes) runs on the
        scoring threads, up to STREAM_TURNS turns ahead, while this thread synthesizes the next
        turns; the results are the same as in order (each turn's takes are seeded by the turn)."""
        if self._pool is None:
            for i, pieces in rendered:
                yield i, work(i, pieces)
            return
        pending: deque[tuple[int, Future[list[tuple[str, Spoken, dict[str, Any]]]]]] = deque()
        try:
            for i, pieces in rendered:
                pending.append((i, self._pool.submit(work, i, pieces)))
                while len(pending) > STREAM_TURNS or (pending and pending[0][1].done()):
                    j, fut = pending.popleft()
                    yield j, fut.result()
            while pending:
                j, fut = pending.popleft()
                yield j, fut.result()
        finally:
            for _, fut in pending:
                fut.cancel()

    def assemble(
        self, dialog: Dialog, casting: Mapping[str, Voice], turns: list[SynthesizedTurn]
    ) -> Conversation:
        """Attach what makes the conversation reproducible, its backchannels and its training
        samples."""
        extra = provenance(self.config.seed, self.config.sample_rate, self.config.gap, self.engine.describe())
        if turns and all(t.words is not None for t in turns):
            extra["word_timing"] = {"method": "engine-durations", "model": self.engine.model}
        if self.asr_check is not None:
            extra["asr_check"] = asr_retry.summary(self.asr_check, turns)
        if self.judge is not None:
            extra["quality_gates"] = self.judge.summary(turns)
        rng = conversation_rng(self.config.seed, dialog.conversation_id, "backchannels")
        planned = backchannels.plan(turns, dialog.speakers, self.config.backchannels, rng)
        seeds = [
            noise_seed(self.config.seed, dialog.conversation_id, f"backchannel:{n}")
            for n in range(len(planned))
        ]
        events = backchannels.speak(self.renderer, planned, casting, turns, seeds)
        if self.config.backchannels:
            extra["backchannels"] = {"rate": self.config.backchannels, "count": len(events)}
        return assemble(dialog, casting, turns, extra, self.sample_builder, events)

    def run(
        self,
        dialog: Dialog,
        sink: Callable[[SynthesizedTurn], SynthesizedTurn] | None = None,
    ) -> Conversation:
        """The whole conversation: its turns synthesized STREAM_TURNS at a time (one engine call
        each, batched), each handed to `sink` as soon as it is placed (the writer's staging, which
        writes it and lets its audio go), so a long session needs the memory of a short one."""
        casting = self.cast(dialog)
        self.check_speakable(dialog, casting)
        turns = [(t.text, casting[t.speaker]) for t in dialog.turns]
        seeds = [self.turn_seed(dialog, i) for i in range(len(turns))]
        rendered = itertools.chain.from_iterable(
            self.renderer.pieces(turns[k : k + STREAM_TURNS], None, seeds[k : k + STREAM_TURNS])
            for k in range(0, len(turns), STREAM_TURNS)
        )
        placed = [sink(t) if sink else t for t in self._place(dialog, casting, rendered)]
        conv = self.assemble(dialog, casting, placed)
        return self.ask(conv, sink)

    def ask(self, conv: Conversation, sink: Callable[[Any], Any] | None = None) -> Conversation:
        """The conversation with its memory probes spoken after it (synth.produce.probes), each
        handed to `sink` as it is spoken."""
        config = self.probes.config
        spoken = self.probes.speak(conv.dialog, conv.casting, conv.turns, self.main_speaker, sink)
        return attach(conv, spoken, self.sample_builder, config.mode)

    produce = run  # the runner's streaming producer interface: produce(item, sink)
