"""Readers of recorded-speech corpora, by name. Each yields RecordedGroup or DialogError lazily.

To add a corpus: a module with a reader and an options dataclass (its fields become the
command-line flags of `synth convert NAME`, their defaults and help shown by `--help`), and one
entry in CORPORA."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..domain import Skipped
from ..errors import ConfigError, DialogError
from ..produce.recorded import RecordedGroup

Reader = Callable[[Path, Any], Iterator["RecordedGroup | DialogError | Skipped"]]


@dataclass(frozen=True)
class LibriSpeechOptions:
    min_duration: float | None = field(
        default=None,
        metadata={
            "help": (
                "chapter chunks of at least this many seconds (shorter chapters are skipped); "
                "default: one conversation per chapter"
            )
        },
    )
    truecase: bool = field(default=False, metadata={"help": "true-case the transcripts"})

    def __post_init__(self) -> None:
        if self.min_duration is not None and not self.min_duration > 0:
            raise ConfigError("min_duration", "must be more than 0 seconds", self.min_duration)


@dataclass(frozen=True)
class CommonVoiceOptions:
    split: str = field(default="train", metadata={"help": "the TSV to read: train, dev, test, validated..."})
    turns: int = field(default=8, metadata={"help": "turns per conversation"})
    speakers: int = field(default=2, metadata={"help": "speakers per conversation"})

    def __post_init__(self) -> None:
        for name in ("turns", "speakers"):
            if getattr(self, name) < 1:
                raise ConfigError(name, "must be at least 1", getattr(self, name))


def _librispeech(path: Path, o: LibriSpeechOptions) -> Iterator[RecordedGroup | DialogError | Skipped]:
    from .librispeech import read_librispeech

    return read_librispeech(path, o.min_duration, o.truecase)


def _commonvoice(path: Path, o: CommonVoiceOptions) -> Iterator[RecordedGroup | DialogError | Skipped]:
    from .commonvoice import read_commonvoice

    return read_commonvoice(path, o.split, o.turns, o.speakers)


@dataclass(frozen=True)
class Corpus:
    """A corpus `synth convert` knows: what its path is, its settings and its reader."""

    name: str
    path_help: str
    options: type
    read: Reader


CORPORA: dict[str, Corpus] = {
    c.name: c
    for c in (
        Corpus(
            "librispeech",
            "LibriSpeech subset folder (e.g. LibriSpeech/train-clean-360)",
            LibriSpeechOptions,
            _librispeech,
        ),
        Corpus(
            "commonvoice",
            "Common Voice language folder (with clips/ and *.tsv)",
            CommonVoiceOptions,
            _commonvoice,
        ),
    )
}
