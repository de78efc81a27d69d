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
from .gigaspeech import SOURCES, SUBSETS, parse_sources
from .segments import RULES, check_name, check_session_minutes

Reader = Callable[[Path, Any], Iterator["RecordedGroup | DialogError | Skipped"]]


@dataclass(frozen=True)
class LibriSpeechOptions:
    """The options of `synth convert librispeech`: chapter chunks and true-casing."""

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
    """The options of `synth convert commonvoice`: the split, and how many turns and speakers make a
    conversation."""

    split: str = field(default="train", metadata={"help": "the TSV to read: train, dev, test, validated..."})
    turns: int = field(default=8, metadata={"help": "turns per conversation"})
    speakers: int = field(default=2, metadata={"help": "speakers per conversation"})

    def __post_init__(self) -> None:
        for name in ("turns", "speakers"):
            if getattr(self, name) < 1:
                raise ConfigError(name, "must be at least 1", getattr(self, name))


_SESSION_HELP = (
    "cut each recording into conversations of about this many minutes, only between segments "
    "(never inside one or where two overlap; a last piece under half of it joins the one before); "
    "default: one conversation per recording"
)
_TRUECASE_HELP = (
    "truecase the transcripts of recordings written all in upper case (a capital at each sentence "
    "start and for I); default: kept as given, and metadata says so"
)


@dataclass(frozen=True)
class LhotseOptions:
    """The options of `synth convert lhotse`: the corpus's name, its transcripts' convention,
    true-casing and sessions."""

    name: str = field(
        default="lhotse",
        metadata={
            "help": "the corpus's name, in conversation ids (<name>_<recording or cut id>_<n>), voices and "
            "metadata (e.g. fisher, swbd, ami)"
        },
    )
    transcripts: str = field(
        default="auto",
        metadata={
            "help": "the transcript convention to clean by (docs/usage.md): auto picks per recording",
            "choices": RULES,
        },
    )
    truecase: bool = field(default=False, metadata={"help": _TRUECASE_HELP})
    session_minutes: float | None = field(default=None, metadata={"help": _SESSION_HELP})
    supervisions: Path | None = None  # the second path on the command line
    max_turn_sec: float | None = None  # the speech profile's longest turn (set by the command)

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.transcripts not in RULES:
            raise ConfigError("transcripts", f"choose one of {', '.join(RULES)}", self.transcripts)
        check_session_minutes(self.session_minutes)


@dataclass(frozen=True)
class GigaSpeechOptions:
    """The options of `synth convert gigaspeech`: the subset, the sources, true-casing and
    sessions."""

    subset: str = field(
        default=None,  # type: ignore[assignment]  # required: the CLI says so when it is missing
        metadata={
            "help": "the subset to convert (required): XS, S, M, L or XL (or DEV, TEST)",
            "choices": SUBSETS,
        },
    )
    sources: str = field(
        default=",".join(SOURCES),
        metadata={"help": "which audios, comma-separated: podcast, youtube, audiobook (read speech)"},
    )
    truecase: bool = field(default=False, metadata={"help": _TRUECASE_HELP})
    session_minutes: float | None = field(default=None, metadata={"help": _SESSION_HELP})
    max_turn_sec: float | None = None  # the speech profile's longest turn (set by the command)

    def __post_init__(self) -> None:
        if self.subset not in SUBSETS:
            raise ConfigError("subset", f"give one of {', '.join(SUBSETS)}", self.subset)
        parse_sources(self.sources)
        check_session_minutes(self.session_minutes)


def _lhotse(path: Path, o: LhotseOptions) -> Iterator[RecordedGroup | DialogError | Skipped]:
    from .lhotse import read_lhotse

    return read_lhotse(
        path, o.supervisions, o.name, o.transcripts, o.truecase, o.session_minutes, o.max_turn_sec
    )


def _gigaspeech(path: Path, o: GigaSpeechOptions) -> Iterator[RecordedGroup | DialogError | Skipped]:
    from .gigaspeech import read_gigaspeech

    return read_gigaspeech(
        path, o.subset, parse_sources(o.sources), o.truecase, o.session_minutes, o.max_turn_sec
    )


def _librispeech(path: Path, o: LibriSpeechOptions) -> Iterator[RecordedGroup | DialogError | Skipped]:
    from .librispeech import read_librispeech

    return read_librispeech(path, o.min_duration, o.truecase)


def _commonvoice(path: Path, o: CommonVoiceOptions) -> Iterator[RecordedGroup | DialogError | Skipped]:
    from .commonvoice import read_commonvoice

    return read_commonvoice(path, o.split, o.turns, o.speakers)


@dataclass(frozen=True)
class Corpus:
    """A corpus `synth convert` knows: what its path is, its settings and its reader;
    `second`: an optional second path on the command line (its metavar, its help), given to the
    reader as the options' field of that name in lower case."""

    name: str
    path_help: str
    options: type
    read: Reader
    second: tuple[str, str] | None = None
    metavar: str | None = None  # the first path's name in usage lines (default: path)


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
        Corpus(
            "lhotse",
            "a Lhotse recordings manifest (with SUPERVISIONS), a cuts manifest (.jsonl or .jsonl.gz), "
            "or a Lhotse Shar folder",
            LhotseOptions,
            _lhotse,
            ("SUPERVISIONS", "the supervisions manifest of RECORDINGS"),
            "RECORDINGS",
        ),
        Corpus(
            "gigaspeech",
            "GigaSpeech folder (with GigaSpeech.json and audio/)",
            GigaSpeechOptions,
            _gigaspeech,
        ),
    )
}
