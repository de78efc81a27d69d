"""A conversation's memory probes after its end in a moshi stereo file (docs/memory.md): each
question on the user's channel (1), its answer, spoken by the main speaker
(`probe_N_answer.wav`, made by `synth generate --probe-answer-audio`), on the model's channel (0)
right after it, the probes one after another with a pause between them. So a model trained on
the file hears the question with the whole conversation behind it and learns to answer from it.
Every probe goes after the conversation's end, whatever its placement in metadata.

The probes' WAVs are 16 kHz (the turn rate) and are resampled to the export's rate: nothing above
8 kHz in this part. They have no word timings: each one's words are spread over its voiced span
(from its first to its last sample above a twentieth of its peak), in proportion to their
length: close enough for moshi's text stream, which places a word at its start's frame."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ..audio import resample, to_pcm16
from ..dataset.reader import ConversationRef
from ..dataset.records import ConversationMetadata
from ..errors import DatasetError
from .rows import member

PROBE_GAP_SEC = 1.0  # silence after the conversation, between probes and at the end
ANSWER_GAP_SEC = 0.3  # between a question's end and its answer
VOICED = 0.05  # of the peak: where a probe's speech begins and ends


@dataclass(frozen=True)
class ProbeAudio:
    """One probe's question and answer at the export rate, and who says them."""

    probe_id: str
    question: str
    answer: str
    asked_by: str
    question_audio: np.ndarray
    answer_audio: np.ndarray


def _read(path: Path, rate: int) -> np.ndarray:
    try:
        audio, source_rate = sf.read(str(path), dtype="float32", always_2d=False)
    except Exception as exc:  # libsndfile: missing or corrupt file
        raise DatasetError(f"{path}: cannot read audio ({exc})") from None
    return resample(audio, source_rate, rate)


def probe_audio(ref: ConversationRef, meta: ConversationMetadata, main: str, rate: int) -> list[ProbeAudio]:
    """Every probe's audio; a DatasetError when one has no answer audio, or its answer was spoken
    in another voice than the main speaker's (the model's side)."""
    out = []
    main_voice = (meta.voices.get(main) or {}).get("id")
    for k, p in enumerate(meta.probes):
        if p.answer_audio_file is None:
            raise DatasetError(
                f"{ref.metadata_path}: probe {p.probe_id} has no answer audio (answer_audio_file): the "
                "moshi export puts each probe's spoken answer on the model's channel; make the dataset "
                "with `synth generate --probe-answer-audio`, or export without --moshi-probes"
            )
        voice = p.extra.get("answer_voice")
        if voice is not None and main_voice is not None and voice != main_voice:
            raise DatasetError(
                f"{ref.metadata_path}: probe {p.probe_id}: its answer is spoken by voice {voice!r}, not by "
                f"{main!r} ({main_voice!r}), the model's side; export with the --main-speaker whose "
                "voice spoke the answers"
            )
        question = _read(member(ref, p.audio_file, f"probes[{k}].audio_file"), rate)
        answer = _read(member(ref, p.answer_audio_file, f"probes[{k}].answer_audio_file"), rate)
        out.append(ProbeAudio(p.probe_id, p.question, p.answer, p.asked_by or "", question, answer))
    return out


def spread_words(text: str, audio: np.ndarray, rate: int, offset: float) -> list[tuple[str, float, float]]:
    """(word, start, end) in seconds, `offset` added: the words over the audio's voiced span."""
    words = text.split()
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    voiced = np.flatnonzero(np.abs(audio) >= VOICED * peak) if peak > 0 else np.zeros(0, dtype=int)
    first, last = (int(voiced[0]), int(voiced[-1]) + 1) if voiced.size else (0, int(audio.size))
    weights = np.array([len(w) + 1 for w in words], dtype=np.float64)
    bounds = first + (last - first) * np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    return [
        (w, round(offset + bounds[i] / rate, 3), round(offset + bounds[i + 1] / rate, 3))
        for i, w in enumerate(words)
    ]


def append_probes(
    path: Path, probes: list[ProbeAudio], rate: int, main_label: str
) -> tuple[int, list[list[Any]]]:
    """Append the probes to the stereo PCM16 WAV at `path` (main speaker on channel 0): the
    frames added and the probes' alignments (the answer's words as `main_label`'s, the question's
    as `SPEAKER_<asker>`'s: never the main label, the question being on the user's side, even in
    a monologue)."""
    if not probes:
        return 0, []
    gap, answer_gap = round(PROBE_GAP_SEC * rate), round(ANSWER_GAP_SEC * rate)
    start = sf.info(str(path)).frames
    total = sum(gap + len(p.question_audio) + answer_gap + len(p.answer_audio) for p in probes) + gap
    tail = np.zeros((total, 2), dtype=np.float32)
    words: list[list[Any]] = []
    at = 0
    for p in probes:
        at += gap
        tail[at : at + len(p.question_audio), 1] = p.question_audio
        asker = f"SPEAKER_{p.asked_by}"
        words += [
            [w, [s, e], asker]
            for w, s, e in spread_words(p.question, p.question_audio, rate, (start + at) / rate)
        ]
        at += len(p.question_audio) + answer_gap
        tail[at : at + len(p.answer_audio), 0] = p.answer_audio
        words += [
            [w, [s, e], main_label]
            for w, s, e in spread_words(p.answer, p.answer_audio, rate, (start + at) / rate)
        ]
        at += len(p.answer_audio)
    with sf.SoundFile(str(path), "r+") as fh:
        if fh.channels != 2 or fh.samplerate != rate:
            raise DatasetError(f"{path}: expected a stereo WAV at {rate} Hz to append the probes to")
        fh.seek(0, sf.SEEK_END)
        fh.write(to_pcm16(tail))
    return total, words
