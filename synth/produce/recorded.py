"""Conversations from recorded speech: groups of audio files (with transcripts, or transcribed
by ASR) become the same Conversation objects as synthesized dialogs, so the writer, `synth
validate`, the samples, the splits and the loader work unchanged.

Audio is decoded (WAV, FLAC, MP3, OGG through libsndfile), mixed down to mono and resampled to
16 kHz with soxr; levels are left as recorded. Turns are placed on a timeline with gaps from the
same seeded distribution as synthesized dialogs."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..audio import SAMPLE_RATE, load_audio
from ..dialogs.text import clean_text, is_speakable
from ..domain import Conversation, Dialog, Source, SynthesizedTurn, Turn, Voice
from ..errors import DialogError
from ..samples.builder import BuildsSamples
from .assembly import assemble, place_turn, provenance
from .timeline import GapDistribution, Timeline

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus")


@dataclass(frozen=True)
class Utterance:
    speaker: str
    path: Path
    text: str | None = None  # None: transcribe with ASR


@dataclass(frozen=True)
class RecordedGroup:
    """One conversation's worth of recorded utterances, in order."""

    conversation_id: str
    source: Source
    corpus: str
    utterances: tuple[Utterance, ...]
    speaker_meta: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. transcript_style


class RecordedProducer:
    """RecordedGroup -> Conversation (a producer for `synth.runner.run`)."""

    def __init__(
        self,
        gap: GapDistribution = GapDistribution(),
        seed: int = 0,
        sample_builder: BuildsSamples | None = None,
        recognizer: Any = None,
        aligner: Any = None,
    ):
        """`recognizer` transcribes files that come without a transcript; `aligner`
        (synth.alignment.ForcedAligner) times every word of every turn."""
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
        for i, utt in enumerate(group.utterances):
            began = time.perf_counter()
            audio = load_audio(utt.path, where)
            extra: dict[str, Any] = {"source_file": utt.path.name}
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
            turns.append(sink(turn) if sink else turn)
        dialog = Dialog(
            conversation_id=group.conversation_id,
            turns=tuple(Turn(tr.speaker, tr.text) for tr in turns),
            source=group.source,
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
