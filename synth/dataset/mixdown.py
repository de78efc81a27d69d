"""Conversation-level audio: the per-turn WAVs and the events (backchannels) of a conversation
placed at their start times on two channels, the way full-duplex models train (Moshi: channel 0
is the model's side, channel 1 the user's).

Channel folding: the main speaker alone on channel 0, every other speaker on channel 1 (with
three or more speakers the others share it; where two of them overlap their samples add). An
event goes on its speaker's channel. The main speaker is the one asked for when the conversation
has it, else its first speaker.

The mix is streamed block by block from the files already written, so a session of an hour needs
the memory of a few seconds of audio. Full band: the producer stages each turn and event also at
`sample_rate` (24 kHz by default, Mimi's rate), resampled once from the engine's own audio, in a
FULLBAND folder of the conversation's staging folder; the mix is made from those, and the folder
is removed before the conversation is committed. Without them (recorded corpora, 16 kHz asked),
it is made from the 16 kHz turn WAVs, copied exactly: where nothing overlaps on a channel, the
conversation audio then equals the per-turn audio sample for sample. `synth validate` checks
either kind against the turns. A windowed session's file is padded to its whole windows
(metadata `session.audio_sec`)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..audio import SAMPLE_RATE, to_pcm16
from ..errors import ConfigError, DatasetError
from ..options import option
from ..seeding import conversation_rng
from .augment import AugmentConfig, ChannelAugmenter, speech_level
from .files import fsync_file
from .records import CONVERSATION_AUDIO, ConversationMetadata

BLOCK_SEC = 20.0
FULLBAND_RATE = 24_000  # Mimi's rate (moshi): the conversation audio of full-duplex trainers
FULLBAND = "fullband"  # in a staging folder: turns and events at the full-band rate, for the mix


@dataclass(frozen=True)
class ConversationAudioConfig:
    """Write conversation.wav beside the turns. main_speaker: the speaker label for channel 0
    (a conversation without it puts its first speaker there); augment: augmentation of the other
    side (channel 1)."""

    main_speaker: str | None = option(
        None,
        metavar="LABEL",
        help="speaker label on channel 0 (e.g. assistant); default and where a conversation lacks it: "
        "its first speaker",
    )
    augment: AugmentConfig | None = None
    sample_rate: int = option(
        FULLBAND_RATE,
        flag="--conversation-rate",
        metavar="HZ",
        help="conversation.wav's rate: 24000 (Mimi's) is full band, made from the engine's own audio; "
        "16000 copies the turn WAVs sample for sample",
    )

    def __post_init__(self) -> None:
        if not 16_000 <= self.sample_rate <= 48_000:
            raise ConfigError("conversation_rate", "must be between 16000 and 48000 Hz", self.sample_rate)

    @property
    def fullband_rate(self) -> int | None:
        """The rate producers must stage each turn at as well (None: the 16 kHz turns are used)."""
        return self.sample_rate if self.sample_rate != SAMPLE_RATE else None


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
        raise DatasetError("a conversation without speakers has no channels")
    main = main_speaker if main_speaker is not None and main_speaker in speakers else speakers[0]
    return main, [[main], [s for s in speakers if s != main]]


def placements(
    folder: Path,
    meta: ConversationMetadata,
    channels: Sequence[Sequence[str]],
    rate: int = SAMPLE_RATE,
    files: Path | None = None,
) -> list[Placed]:
    """Every turn and event of a conversation folder on its channel; `files`: the folder their
    audio is read from at `rate` (default: the conversation folder's own 16 kHz files)."""
    channel_of = {s: i for i, members in enumerate(channels) for s in members}
    base = files or folder
    out = []
    for t in meta.turns:
        path = base / t.audio_file
        n = t.num_samples if t.num_samples is not None and files is None else sf.info(str(path)).frames
        out.append(Placed(path, channel_of[t.speaker], round(t.start_time * rate), n))
    for e in meta.events:
        if e.audio_file is None:
            continue
        path = base / e.audio_file
        out.append(Placed(path, channel_of[e.speaker], round(e.start * rate), sf.info(str(path)).frames))
    return sorted(out, key=lambda p: p.start)


def padded_sec(meta: ConversationMetadata) -> float | None:
    """The length a windowed session's conversation audio is padded to (None: no padding)."""
    value = (meta.extra.get("session") or {}).get("audio_sec")
    return float(value) if value is not None else None


Processor = Callable[[np.ndarray, int], np.ndarray]  # (a channel's block, its first sample) -> block


def mix_blocks(
    items: Sequence[Placed],
    channels: int = 2,
    rate: int = SAMPLE_RATE,
    block_sec: float = BLOCK_SEC,
    total: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first sample, float32 block of shape (n, channels)) covering the whole
    conversation (or `total` samples, silence after the last file), each holding the sum of the
    files that overlap it."""
    total = max([p.start + p.length for p in items] + [total or 0])
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
    total: int | None = None,
) -> int:
    """Write the two-channel PCM16 WAV of `items`; a channel's `processor` (augmentation) sees
    every block in order, and `tail_sec` of silence is added at the end for its reverb tail.
    `out_rate`: resample (soxr, streamed) to this rate; `total`: at least this many samples.
    Returns the number of frames written."""
    processors = processors or {}
    blocks = mix_blocks(items, 2, rate, total=total)
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
    folder: Path, meta: ConversationMetadata, config: ConversationAudioConfig
) -> ConversationMetadata:
    """Mix a conversation folder's turns and events into its conversation.wav (fsynced) and
    return its metadata saying so (channels, main speaker, rate, augmentation): from the staged
    full-band files when every turn and event has one, else from the 16 kHz turns."""
    main, channels = channel_layout(meta.speakers, config.main_speaker)
    staged = folder / FULLBAND
    names = [t.audio_file for t in meta.turns] + [e.audio_file for e in meta.events if e.audio_file]
    full = config.fullband_rate is not None and all((staged / n).is_file() for n in names)
    rate = config.sample_rate if full else SAMPLE_RATE
    items = placements(folder, meta, channels, rate, staged if full else None)
    pad = padded_sec(meta)
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
    write_mix(out, items, rate, processors, tail, total=round(pad * rate) if pad else None)
    fsync_file(out)
    return replace(
        meta,
        conversation_audio=CONVERSATION_AUDIO,
        conversation_audio_rate=rate,
        channels=channels,
        main_speaker=main,
        extra=extra,
    )
