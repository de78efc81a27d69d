"""Conversation-level audio: the per-turn WAVs and the events (backchannels) of a conversation
placed at their start times on two channels, the way full-duplex models train (Moshi: channel 0
is the model's side, channel 1 the user's).

Channel folding: the main speaker alone on channel 0, every other speaker on channel 1 (with
three or more speakers the others share it; where two of them overlap their samples add). An
event goes on its speaker's channel. The main speaker is the one asked for when the conversation
has it, else its first speaker.

The mix is streamed block by block from the files already written, so a session of an hour needs
the memory of a few seconds of audio. Samples are copied exactly (PCM16 in, PCM16 out): where
nothing overlaps on a channel, the conversation audio equals the per-turn audio sample for
sample, which `synth validate` checks."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..audio import SAMPLE_RATE, to_pcm16
from .augment import AugmentConfig, ChannelAugmenter, speech_level
from .records import CONVERSATION_AUDIO, ConversationMetadata
from ..seeding import conversation_rng

BLOCK_SEC = 20.0


@dataclass(frozen=True)
class ConversationAudioConfig:
    """Write conversation.wav beside the turns. main_speaker: the speaker label for channel 0
    (a conversation without it puts its first speaker there); augment: augmentation of the other
    side (channel 1)."""

    main_speaker: str | None = None
    augment: AugmentConfig | None = None


@dataclass(frozen=True)
class Placed:
    """One file placed on a channel, `start` in samples."""

    path: Path
    channel: int
    start: int
    length: int


def channel_layout(speakers: Sequence[str], main_speaker: str | None = None) -> tuple[str, list[list[str]]]:
    """(main speaker, speakers of channel 0 and of channel 1)."""
    if not speakers:
        raise ValueError("a conversation without speakers has no channels")
    main = main_speaker if main_speaker in speakers else speakers[0]
    return main, [[main], [s for s in speakers if s != main]]


def placements(
    folder: Path, meta: ConversationMetadata, channels: Sequence[Sequence[str]], rate: int = SAMPLE_RATE
) -> list[Placed]:
    """Every turn and event of a conversation folder on its channel."""
    channel_of = {s: i for i, members in enumerate(channels) for s in members}
    out = []
    for t in meta.turns:
        path = folder / t.audio_file
        n = t.num_samples if t.num_samples is not None else sf.info(str(path)).frames
        out.append(Placed(path, channel_of[t.speaker], round(t.start_time * rate), n))
    for e in meta.events:
        if e.audio_file is None:
            continue
        path = folder / e.audio_file
        out.append(Placed(path, channel_of[e.speaker], round(e.start * rate), sf.info(str(path)).frames))
    return sorted(out, key=lambda p: p.start)


Processor = Callable[[np.ndarray, int], np.ndarray]  # (a channel's block, its first sample) -> block


def mix_blocks(
    items: Sequence[Placed], channels: int = 2, rate: int = SAMPLE_RATE, block_sec: float = BLOCK_SEC
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first sample, float32 block of shape (n, channels)) covering the whole
    conversation, each holding the sum of the files that overlap it."""
    total = max((p.start + p.length for p in items), default=0)
    block = max(1, int(block_sec * rate))
    for b0 in range(0, total, block):
        b1 = min(total, b0 + block)
        buf = np.zeros((b1 - b0, channels), dtype=np.float32)
        for p in items:
            if p.start >= b1:
                break
            lo, hi = max(b0, p.start), min(b1, p.start + p.length)
            if lo >= hi:
                continue
            data, _ = sf.read(
                str(p.path), start=lo - p.start, stop=hi - p.start, dtype="float32", always_2d=True
            )
            buf[lo - b0 : lo - b0 + data.shape[0], p.channel] += data[:, 0]
        yield b0, buf


def write_mix(
    out: Path,
    items: Sequence[Placed],
    rate: int = SAMPLE_RATE,
    processors: dict[int, Processor] | None = None,
    tail_sec: float = 0.0,
    out_rate: int | None = None,
) -> int:
    """Write the two-channel PCM16 WAV of `items`; a channel's `processor` (augmentation) sees
    every block in order, and `tail_sec` of silence is added at the end for its reverb tail.
    `out_rate`: resample (soxr, streamed) to this rate. Returns the number of frames written."""
    processors = processors or {}
    blocks = mix_blocks(items, 2, rate)
    if tail_sec and processors:
        end = max((p.start + p.length for p in items), default=0)
        blocks = itertools.chain(blocks, [(end, np.zeros((int(tail_sec * rate), 2), dtype=np.float32))])
    return write_blocks(out, (_processed(b0, buf, processors) for b0, buf in blocks), rate, out_rate)


def write_blocks(out: Path, blocks: Iterable[np.ndarray], rate: int, out_rate: int | None = None) -> int:
    """Write float32 (n, 2) blocks as a two-channel PCM16 WAV, resampled to `out_rate` (soxr,
    streamed) when it differs from `rate`. Returns the number of frames written."""
    frames = 0
    target = out_rate or rate
    stream = soxr.ResampleStream(rate, target, 2, dtype="float32") if target != rate else None
    with sf.SoundFile(str(out), "w", samplerate=target, channels=2, subtype="PCM_16", format="WAV") as fh:
        for buf in blocks:
            data = stream.resample_chunk(buf) if stream is not None else buf
            fh.write(to_pcm16(data))
            frames += data.shape[0]
        if stream is not None:
            rest = stream.resample_chunk(np.zeros((0, 2), dtype=np.float32), last=True)
            fh.write(to_pcm16(rest))
            frames += rest.shape[0]
    return frames


def _processed(b0: int, buf: np.ndarray, processors: dict[int, Processor]) -> np.ndarray:
    for ch, process in processors.items():
        buf[:, ch] = process(buf[:, ch], b0)
    return buf


def write_conversation_audio(
    folder: Path, meta: ConversationMetadata, config: ConversationAudioConfig, rate: int = SAMPLE_RATE
) -> ConversationMetadata:
    """Mix a conversation folder's turns and events into its conversation.wav (fsynced) and
    return its metadata saying so (channels, main speaker, augmentation)."""
    main, channels = channel_layout(meta.speakers, config.main_speaker)
    items = placements(folder, meta, channels, rate)
    extra = dict(meta.extra)
    processors: dict[int, Processor] = {}
    tail = 0.0
    if config.augment is not None:
        rng = conversation_rng(int(meta.extra.get("seed", 0)), meta.conversation_id, "augment")
        recipe = {"channel": 1, **config.augment.draw(rng)}
        augmenter = ChannelAugmenter(recipe, speech_level([p.path for p in items if p.channel == 1]), rate)
        processors[1], tail = augmenter, augmenter.tail_sec
        extra["augmentation"] = recipe
    out = folder / CONVERSATION_AUDIO
    write_mix(out, items, rate, processors, tail)
    with open(out, "rb+") as fh:
        os.fsync(fh.fileno())
    return replace(
        meta, conversation_audio=CONVERSATION_AUDIO, channels=channels, main_speaker=main, extra=extra
    )
