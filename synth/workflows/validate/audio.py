"""The audio files: every turn, event and probe WAV 16 kHz mono PCM16 with samples, a synthesized
turn's edges of silence, and conversation.wav holding exactly the turns and events that metadata
puts on each channel (the signal processing it needs is in synth.audio)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf

from ...audio import SAMPLE_RATE, ResampledReader, edge_silence, residual, to_pcm16
from ...dataset.mixdown import mix_blocks, padded_sec, placements
from ...dataset.records import METADATA_FILE, ConversationMetadata
from ...errors import RecordError
from .problems import Place, Problem

if TYPE_CHECKING:
    from .conversation import Conversation

EDGE_SILENCE_TOLERANCE_SEC = 0.125  # TURN_PAD_SEC (0.1) and two 10 ms detection frames
FULLBAND_MATCH = 0.05  # residual energy of a full-band channel brought to 16 kHz vs the turns


def check_edges(path: Path, at: Place) -> list[Problem]:
    """A synthesized turn starts and ends with the documented 0.1 s of silence (a warning: other
    tools' data may differ)."""
    try:
        audio, rate = sf.read(str(path), dtype="float32")
    except (RuntimeError, OSError):
        return []
    if audio.ndim != 1 or not audio.size:
        return []
    edges = edge_silence(audio, rate)
    if edges is None or max(edges) <= EDGE_SILENCE_TOLERANCE_SEC:
        return []
    lead, trail = edges
    return [
        at.warning(
            f"{lead:.2f} s of silence before the speech and {trail:.2f} s after (synth pads turns with 0.1 s)"
        )
    ]


def check_conversation_audio(conv: Conversation) -> list[Problem]:
    """conversation.wav: two-channel PCM16 at its recorded rate whose clean channels hold exactly
    the turns and events that metadata puts there (an augmented channel is checked for its length
    only)."""
    name = conv.meta.get("conversation_audio")
    if name is None:
        return []
    at, meta_at = conv.place(name), conv.place(METADATA_FILE)
    try:
        record = ConversationMetadata.from_dict(conv.meta)
        info = sf.info(str(conv.folder / name))
    except (RecordError, ValueError, TypeError) as exc:
        return [meta_at.error(str(exc))]
    except (RuntimeError, OSError) as exc:  # libsndfile: missing or unreadable
        return [at.error(f"unreadable ({exc})")]
    channels = record.channels or []
    members = [s for c in channels for s in c]
    if (
        len(channels) != 2
        or sorted(members) != sorted(record.speakers)
        or record.main_speaker not in channels[0]
    ):
        return [
            meta_at.error(
                "'channels' must put every speaker on one of two channels, the main speaker on channel 0",
                "channels",
            )
        ]
    rate = record.conversation_audio_rate or SAMPLE_RATE
    if (info.samplerate, info.channels, info.subtype) != (rate, 2, "PCM_16"):
        return [
            at.error(
                f"expected {rate} Hz two-channel PCM16 (metadata conversation_audio_rate), got "
                f"{info.samplerate} Hz, {info.channels} channels, {info.subtype}"
            )
        ]
    augmented = {int((record.extra.get("augmentation") or {}).get("channel", -1))}
    try:
        items = placements(conv.folder, record, channels)
        expected_frames = max((p.start + p.length for p in items), default=0) * rate // SAMPLE_RATE
        pad = padded_sec(record)
        if pad is not None and info.frames < round(pad * rate):
            return [at.error(f"{info.frames} frames, the session's windows need {round(pad * rate)}")]
        if info.frames < expected_frames - 2:
            return [at.error(f"{info.frames} frames, the timeline needs {expected_frames}")]
        if rate == SAMPLE_RATE:
            return _same_samples(conv.folder / name, items, augmented, at)
        return _same_speech(conv.folder / name, items, rate, augmented, at)
    except (RuntimeError, OSError, KeyError) as exc:
        return [at.error(f"cannot be checked against its turns ({exc})")]


def _same_samples(path: Path, items: list[Any], augmented: set[int], at: Place) -> list[Problem]:
    """A 16 kHz conversation.wav: its clean channels equal the turns' and events' samples."""
    with sf.SoundFile(str(path)) as fh:
        for b0, expected in mix_blocks(items):
            got = fh.read(expected.shape[0], dtype="int16", always_2d=True)
            for ch in (0, 1):
                if ch in augmented:
                    continue
                differs = np.flatnonzero(got[:, ch] != to_pcm16(expected[:, ch]))
                if differs.size:
                    at_sec = (b0 + int(differs[0])) / SAMPLE_RATE
                    return [at.error(f"channel {ch} differs from the turns and events at {at_sec:.3f} s")]
    return []


def _same_speech(path: Path, items: list[Any], rate: int, augmented: set[int], at: Place) -> list[Problem]:
    """A full-band conversation.wav (made from the engine's own audio, not from the turn WAVs):
    each clean channel, brought down to 16 kHz, holds the turns and events that metadata puts
    there, where it puts them (residual under FULLBAND_MATCH of their energy in every block)."""
    with ResampledReader(path, SAMPLE_RATE) as reader:
        for b0, expected in mix_blocks(items):
            got = reader.read(expected.shape[0])
            for ch in (0, 1):
                off = None if ch in augmented else residual(got[:, ch], expected[:, ch])
                if off is not None and off > FULLBAND_MATCH:
                    return [
                        at.error(
                            f"channel {ch} does not hold the turns and events of metadata near "
                            f"{b0 / SAMPLE_RATE:.1f} s (residual {off:.2f} of their energy)"
                        )
                    ]
    return []
