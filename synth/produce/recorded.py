"""Conversations from recorded speech: groups of audio files (with transcripts, or transcribed
by ASR) become the same Conversation objects as synthesized dialogs, so the writer, `synth
validate`, the samples, the splits and the loader work unchanged.

Audio is decoded (WAV, FLAC, MP3, OGG through libsndfile), mixed down to mono and resampled to
16 kHz with soxr; levels are left as recorded. Turns are placed on a timeline with gaps from the
same seeded distribution as synthesized dialogs.

A long recording (a podcast episode, a telephone call) comes as a group whose utterances are
`Span`s of it: each is read on its own by seeking (`Pieces`: only that piece is decoded and in
memory, so an hour needs the memory of one turn), from the channels the corpus puts it on, and
placed at the corpus's own time (real gaps and overlaps, no drawn gap)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
import soundfile as sf

from ..audio import SAMPLE_RATE, load_audio, resample
from ..dialogs.text import clean_text, is_speakable
from ..domain import Conversation, Dialog, Source, SynthesizedTurn, Turn, Voice
from ..errors import DialogError, SynthError
from ..samples.builder import BuildsSamples
from .assembly import assemble, place_turn, provenance
from .timeline import GapDistribution, Timeline

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus")


SHORT_READ_SEC = 0.01  # a piece may come this much shorter than asked (the recording's last samples)


@dataclass(frozen=True)
class Span:
    """Where an utterance lies in a long recording: `start` and `duration` in seconds of the
    recording, the recording's `channels` it is heard on (mixed down; None: all of them), and
    `at`, its start on the conversation's timeline (the corpus's time less the conversation's
    offset)."""

    start: float
    duration: float
    at: float
    channels: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Utterance:
    """One recorded turn: its speaker, its audio (a file, or a span of the group's recording) and
    its transcript, if it has one."""

    speaker: str
    path: Path
    text: str | None = None  # None: transcribe with ASR
    span: Span | None = None  # a piece of the group's recording (None: the whole file `path`)
    extra: Mapping[str, Any] = field(default_factory=dict)  # the turn's metadata (segment id, times)


class Pieces(Protocol):
    """A long recording read piece by piece: `read` gives 16 kHz mono float32 of `duration`
    seconds from `start`, the `channels` mixed down (None: all)."""

    def read(self, start: float, duration: float, channels: tuple[int, ...] | None) -> np.ndarray: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class AudioFile:
    """One file of a recording: a path, or a function opening it as a binary file object (audio
    inside an archive); `channels`: the recording's channel ids it holds, in its order (None:
    0, 1, ...)."""

    source: Path | Callable[[], BinaryIO]
    channels: tuple[int, ...] | None = None


class FilePieces:
    """A recording held in files libsndfile reads (WAV, FLAC, Ogg/Opus and Vorbis, MP3, NIST
    SPHERE...), each opened once and read by seeking: only the piece asked for is decoded."""

    def __init__(self, files: Sequence[AudioFile], name: str):
        self.name = name
        self._handles: list[tuple[sf.SoundFile, tuple[int, ...]]] = []
        self._opened: list[BinaryIO] = []  # file objects soundfile reads but does not close
        try:
            for f in files:
                if isinstance(f.source, Path):
                    fh = sf.SoundFile(str(f.source))
                else:
                    self._opened.append(f.source())
                    fh = sf.SoundFile(self._opened[-1])
                ids = f.channels if f.channels is not None else tuple(range(fh.channels))
                if len(ids) != fh.channels:
                    fh.close()
                    raise SynthError(f"{name}: holds {fh.channels} channel(s), the manifest says {len(ids)}")
                self._handles.append((fh, ids))
        except SynthError:
            self.close()
            raise
        except Exception as exc:  # libsndfile: missing, truncated or not audio
            self.close()
            raise SynthError(f"unreadable audio {name} ({exc})") from None

    def read(self, start: float, duration: float, channels: tuple[int, ...] | None) -> np.ndarray:
        total: np.ndarray | None = None
        count = 0
        for fh, ids in self._handles:
            cols = [i for i, c in enumerate(ids) if channels is None or c in channels]
            if not cols:
                continue
            first = min(max(0, round(start * fh.samplerate)), fh.frames)
            fh.seek(first)
            frames = max(0, round((start + duration) * fh.samplerate) - first)
            data = fh.read(frames, dtype="float32", always_2d=True)
            mono = resample(data[:, cols].sum(axis=1), fh.samplerate, SAMPLE_RATE)
            if total is None:
                total = mono
            else:
                n = min(total.shape[0], mono.shape[0])
                total = total[:n] + mono[:n]
            count += len(cols)
        if total is None:
            raise SynthError(f"{self.name}: no channel {list(channels or [])}")
        return (total / count).astype(np.float32, copy=False)

    def close(self) -> None:
        for fh, _ in self._handles:
            fh.close()
        for obj in self._opened:
            obj.close()
        self._handles, self._opened = [], []


@dataclass(frozen=True)
class RecordedGroup:
    """One conversation's worth of recorded utterances, in order. With `recording` (which opens
    the long recording its utterances' spans are pieces of), each turn is read from it and placed
    at its span's time; `notes`: what of the source was left out, each naming where."""

    conversation_id: str
    source: Source
    corpus: str
    utterances: tuple[Utterance, ...]
    speaker_meta: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. transcript_style
    recording: Callable[[], Pieces] | None = None
    notes: tuple[str, ...] = ()


class RecordedProducer:
    """RecordedGroup -> Conversation (a producer for `synth.workflows.runner.Run`)."""

    def __init__(
        self,
        gap: GapDistribution = GapDistribution(),
        seed: int = 0,
        sample_builder: BuildsSamples | None = None,
        recognizer: Any = None,
        aligner: Any = None,
    ):
        """`recognizer` transcribes files that come without a transcript; `aligner`
        (synth.asr.alignment.ForcedAligner) times every word of every turn."""
        self.gap, self.seed = gap, seed
        self.sample_builder = sample_builder
        self.recognizer = recognizer
        self.aligner = aligner

    def __call__(
        self,
        group: RecordedGroup,
        sink: Callable[[SynthesizedTurn], SynthesizedTurn] | None = None,
    ) -> Conversation:
        """The conversation of a group; each turn goes to `sink` (the writer's staging) as soon
        as it is decoded, so a long recording needs the memory of one turn."""
        where = group.source.describe()
        timeline = Timeline(self.gap, self.seed, group.conversation_id)
        voices = {
            s: Voice(
                id=f"{group.corpus}-{s}",
                engine="recorded",
                model=group.corpus,
                speaker=s,
                meta=dict(group.speaker_meta.get(s, {})),
            )
            for s in dict.fromkeys(u.speaker for u in group.utterances)
        }
        turns: list[SynthesizedTurn] = []
        pieces = self._open(group, where)
        try:
            self._turns(group, where, timeline, voices, turns, pieces, sink)
        finally:
            if pieces is not None:
                pieces.close()
        dialog = Dialog(
            conversation_id=group.conversation_id,
            turns=tuple(Turn(tr.speaker, tr.text) for tr in turns),
            source=group.source,
            notes=group.notes,
        )
        extra = {
            **provenance(self.seed, SAMPLE_RATE, self.gap, {"engine": "recorded", "corpus": group.corpus}),
            **dict(group.extra),
        }
        if self.recognizer is not None and any(u.text is None for u in group.utterances):
            extra["asr"] = self.recognizer.describe()
        if self.aligner is not None:
            extra["word_timing"] = self.aligner.describe()
        return assemble(dialog, voices, turns, extra, self.sample_builder)

    produce = __call__  # the runner's streaming producer interface: produce(item, sink)

    @staticmethod
    def _open(group: RecordedGroup, where: str) -> Pieces | None:
        if group.recording is None:
            return None
        try:
            return group.recording()
        except SynthError as exc:
            raise DialogError(str(exc), where, "", group.conversation_id) from None

    @staticmethod
    def _piece(pieces: Pieces | None, utt: Utterance, i: int, group: RecordedGroup, where: str) -> np.ndarray:
        """A span's audio, read from the recording: exactly as long as the span (within
        SHORT_READ_SEC: a recording's last samples), or a DialogError naming the segment."""
        assert utt.span is not None
        field_ = f"turns[{i}]"
        if pieces is None:
            raise DialogError(
                "a span without a recording to read it from", where, field_, group.conversation_id
            )
        try:
            audio = pieces.read(utt.span.start, utt.span.duration, utt.span.channels)
        except SynthError as exc:
            raise DialogError(str(exc), where, field_, group.conversation_id) from None
        except Exception as exc:  # libsndfile: a damaged file
            raise DialogError(f"unreadable audio ({exc})", where, field_, group.conversation_id) from None
        segment = utt.extra.get("segment_id", utt.path.name)
        if audio.shape[0] / SAMPLE_RATE < utt.span.duration - SHORT_READ_SEC:
            raise DialogError(
                f"segment {segment} ends at {utt.span.start + utt.span.duration:.3f} s, after its "
                f"recording's audio ({audio.shape[0] / SAMPLE_RATE:.3f} s of it read)",
                where,
                field_,
                group.conversation_id,
            )
        return audio

    def _turns(
        self,
        group: RecordedGroup,
        where: str,
        timeline: Timeline,
        voices: Mapping[str, Voice],
        turns: list[SynthesizedTurn],
        pieces: Pieces | None,
        sink: Callable[[SynthesizedTurn], SynthesizedTurn] | None,
    ) -> None:
        for i, utt in enumerate(group.utterances):
            began = time.perf_counter()
            if utt.span is not None:
                audio = self._piece(pieces, utt, i, group, where)
            else:
                audio = load_audio(utt.path, where)
            extra: dict[str, Any] = {"source_file": utt.path.name, **dict(utt.extra)}
            text = utt.text
            if text is None:
                if self.recognizer is None:
                    raise DialogError(
                        f"no transcript for {utt.path.name} and no ASR model",
                        where,
                        f"turns[{i}]",
                        group.conversation_id,
                    )
                result = self.recognizer.transcribe(audio)
                text = result.text
                extra["asr"] = {"confidence": result.confidence, "no_speech_prob": result.no_speech_prob}
            text = clean_text(text)
            if not text or not is_speakable(text):
                raise DialogError(
                    f"{utt.path.name}: empty transcript"
                    + (" (ASR heard no speech)" if utt.text is None else ""),
                    where,
                    f"turns[{i}].text",
                    group.conversation_id,
                )
            words = self.aligner.align(audio, text) if self.aligner is not None else None
            turn = place_turn(
                timeline,
                i,
                utt.speaker,
                voices[utt.speaker],
                text,
                audio,
                SAMPLE_RATE,
                began,
                extra,
                words=words,
            )
            if utt.span is not None:  # the corpus's own time, not the timeline's drawn gap
                turn.start_time = utt.span.at
            turns.append(sink(turn) if sink else turn)
