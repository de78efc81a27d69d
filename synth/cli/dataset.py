"""Commands over a finished dataset: validate, splits, tokenize, export, check."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .. import api
from ..dataset.fingerprint import sample_keys
from ..dataset.reader import open_dataset
from ..dataset.writer import READ, Holder, recover_dataset, using
from ..export import EXPORTS
from ..quality import dataset_stats, format_stats
from ..samples.curriculum import QualityFilter, parse_quality_bounds, parse_stages, write_splits
from ..samples.retokenize import retokenize
from ..voices.report import dataset_voice_stats
from ..workflows.asr_check import check_dataset
from ..workflows.merge import merge_datasets
from ..workflows.timeline_stats import timeline_stats
from ..workflows.validate import validate_dataset
from .common import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, add_options, add_parser, options_from
from .groups import (
    add_sample_args,
    samples_from,
)


def register(sub: Any) -> None:
    """Add the commands over a finished dataset (validate, splits, tokenize, export, merge, check)."""
    val = add_parser(
        sub,
        "validate",
        "check a dataset folder against the contract",
        "Check WAV format, transcripts, metadata, turn ids, durations and the manifest; exit 1 on any error.",
    )
    val.add_argument("dataset", help="dataset root folder")
    val.add_argument("--json", action="store_true", help="print the report as JSON")
    val.add_argument(
        "--recover",
        action="store_true",
        help="first do what every writer does at start: finish (or undo) an interrupted rewrite, remove "
        "what interrupted runs left (unfinished conversations, hidden files, torn manifest lines); "
        "refused while a rewrite runs",
    )
    val.add_argument(
        "--stats",
        action="store_true",
        help="also say how many distinct speakers (voices) the dataset has, by model and engine, and "
        "how its timelines look (overlap share, offsets, backchannels per opportunity)",
    )
    val.set_defaults(run=cmd_validate)

    sp = add_parser(
        sub,
        "splits",
        "write curriculum manifests by token budget",
        "Write <dataset>/splits/stage_<N>.jsonl: the manifest lines of the "
        "conversations whose total_tokens fit each stage.",
    )
    sp.add_argument("dataset", help="dataset root folder")
    sp.add_argument(
        "--stages",
        default="8192,16384,32768,65536",
        help="increasing token budgets, e.g. 8192,16384 or 8k,16k",
    )
    sp.add_argument("--out", default=None, help="folder for the split manifests (default <dataset>/splits)")
    sp.add_argument(
        "--bands",
        action="store_true",
        help="each conversation in exactly one stage, the smallest it fits (band_<N>.jsonl); "
        "default: cumulative stages (stage_<N>.jsonl)",
    )
    sp.add_argument(
        "--min-quality",
        action="append",
        metavar="SCORE=N",
        help="leave out conversations whose worst turn scores below N (their manifest summary's min; "
        "repeatable, e.g. dnsmos_ovrl=2.5, speaker_sim=0.8; `synth score` adds the scores)",
    )
    sp.add_argument(
        "--max-quality",
        action="append",
        metavar="SCORE=N",
        help="leave out conversations whose worst turn scores above N (their manifest summary's max; "
        "repeatable, e.g. wer=0.2, speaker_sim_other=0.85)",
    )
    sp.set_defaults(run=cmd_splits)

    tk = add_parser(
        sub,
        "tokenize",
        "rewrite the training samples of a dataset",
        "Rebuild samples.jsonl and token counts of every conversation with another tokenizer or format.",
    )
    tk.add_argument("dataset", help="dataset root folder")
    tk.add_argument(
        "--wait",
        action="store_true",
        help="wait for the tools using the dataset (generate, serve, merge, export...) to finish, "
        "instead of refusing at once; no other tool starts on it meanwhile",
    )
    add_sample_args(tk, "--format", "--sample-format")
    tk.set_defaults(run=cmd_tokenize)

    ex = add_parser(
        sub,
        "export",
        "export a dataset for other training code",
        "Export a dataset for training code that does not read its folder layout. "
        "Targets: " + "; ".join(f"{t.name}: {t.output_help}" for t in EXPORTS.values()) + ".",
    )
    ex.add_argument("dataset", help="dataset root folder")
    ex.add_argument("output", help="the export's output (see --to)")
    ex.add_argument("--to", required=True, choices=tuple(EXPORTS), help="export target")
    ex.add_argument("--manifest", default=None, help="export only this split manifest")
    for target in EXPORTS.values():
        add_options(ex.add_argument_group(f"--to {target.name}"), target.options)
    ex.set_defaults(run=cmd_export)

    mg = add_parser(
        sub,
        "merge",
        "join datasets (e.g. per-shard ones) into one",
        "Copy every conversation of the input datasets into OUT through the atomic "
        "writer: each exactly once, resumable; ids found in two inputs are taken from "
        "the first and reported.",
    )
    mg.add_argument("out", help="the merged dataset's root folder (created or resumed)")
    mg.add_argument("inputs", nargs="+", help="dataset root folders to merge, in order of precedence")
    mg.set_defaults(run=cmd_merge)

    ck = add_parser(
        sub,
        "check",
        "check a dataset's speech against its transcripts with ASR",
        "Transcribe every turn, compute word error rate against its transcript "
        "(synth.asr.wer normalization), record it in metadata, report the worst turns. The same "
        "policy as generate --asr-check: turns over the threshold are kept, marked and listed, "
        "and the command exits 3.",
    )
    ck.add_argument("dataset", help="dataset root folder")
    ck.add_argument("--asr", action="store_true", help="run the ASR check (the only check; the default)")
    ck.add_argument("--asr-model", default=None, help="faster-whisper model (default: embedded tiny.en)")
    ck.add_argument(
        "--threshold",
        type=float,
        default=api.AsrCheckConfig.threshold,
        help="word error rate that fails a turn",
    )
    ck.add_argument("--worst", type=int, default=10, help="how many of the worst turns to list")
    ck.add_argument("--no-write", action="store_true", help="do not record results in metadata.json")
    ck.add_argument("--quiet", action="store_true", help="no progress bar")
    ck.set_defaults(run=cmd_check)


def cmd_validate(args: argparse.Namespace) -> int:
    """The `synth validate` command: the contract check of a dataset (after --recover, if given), its
    exit code and --stats (voices, timelines, quality)."""
    if args.recover:
        recovery = recover_dataset(args.dataset)
        if recovery:
            print(f"recovered: {recovery}")
    report = validate_dataset(args.dataset)
    stats = dataset_voice_stats(args.dataset) if args.stats and report.ok else None
    timing = timeline_stats(args.dataset) if stats is not None else None
    quality = dataset_stats(args.dataset) if stats is not None else None
    if args.json:
        record = {
            "ok": report.ok,
            "errors": report.errors,
            "warnings": report.warnings,
            "advice": report.advice,
            "conversations": report.conversations,
            "turns": report.turns,
            "audio_sec": round(report.audio_sec, 3),
        }
        extra = {"voices": stats, "timeline": timing, "quality": quality} if stats else {}
        print(json.dumps({**record, **extra}, indent=2))
    else:
        print(report.format())
        if stats and timing:
            models = ", ".join(f"{n} from {m}" for m, n in stats["by_model"].items())
            print(f"{stats['distinct_voices']} distinct speakers (voices): {models}")
            print(
                f"{timing['speaker_changes']} speaker changes, {timing['overlap_share']} of them overlapping, "
                f"median offset {timing['offset_median_sec']} s; {timing['backchannels']} backchannels in "
                f"{timing['backchannel_opportunities']} opportunities ({timing['backchannels_per_opportunity']})"
            )
        if quality:
            print("\n".join(format_stats(quality)))
    return EXIT_OK if report.ok else EXIT_ERROR


def cmd_splits(args: argparse.Namespace) -> int:
    """The `synth splits` command: the samples split into curriculum stages (or bands) by token count,
    within the quality bounds, with a histogram of each."""
    quality = QualityFilter(
        parse_quality_bounds(args.min_quality, "min_quality"),
        parse_quality_bounds(args.max_quality, "max_quality"),
    )
    summaries, too_long = write_splits(
        args.dataset,
        parse_stages(args.stages),
        Path(args.out) if args.out else None,
        bands=args.bands,
        quality=quality,
    )
    for s in summaries:
        span = f"{s.lower + 1}-{s.stage}" if args.bands else f"<= {s.stage}"
        print(
            f"{'band' if args.bands else 'stage'} {s.stage:>7} ({span} tokens): {s.conversations:6d} "
            f"conversations {s.hours:8.3f} h {s.total_tokens:>12,d} tokens  -> {s.path}"
        )
        print("\n".join(s.format_histogram()))
    if too_long:
        print(f"{too_long} conversation(s) exceed the last stage and are in no split")
    if quality:
        print(f"{len(quality.dropped)} conversation(s) left out by the quality bounds")
        for cid, why in quality.dropped[:10]:
            print(f"  {cid}: {why}")
    return EXIT_OK


def cmd_tokenize(args: argparse.Namespace) -> int:
    """The `synth tokenize` command: rebuild the samples with another tokenizer or format, waiting for
    a running writer with --wait."""
    config = samples_from(args)

    def waiting(holders: list[Holder]) -> None:
        names = "; ".join(h.describe() for h in holders) or "another process"
        print(f"waiting for {names} to finish (--wait) ...", file=sys.stderr, flush=True)

    n = retokenize(
        args.dataset,
        api.sample_builder(config, args.tokenizer),
        options=sample_keys(config, args.tokenizer),
        wait=args.wait,
        on_wait=waiting,
    )
    print(
        f"tokenized {n} conversation(s) with {args.tokenizer} ({args.sample_format}, speech profile "
        f"{config.speech_profile}); dataset.json records these settings"
    )
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """The `synth export` command: the dataset in another format (--to), read under the dataset's
    read lock so that no rewrite runs beside it."""
    target = EXPORTS[args.to]
    with using(args.dataset, READ) if Path(args.dataset).is_dir() else contextlib.nullcontext():
        summary = target.run(  # never beside a rewrite of the dataset (a mix of two option sets)
            Path(args.dataset),
            Path(args.output),
            Path(args.manifest) if args.manifest else None,
            options_from(args, target.options),
        )
    print(summary.format(args.output, args.to))
    return EXIT_OK


def cmd_merge(args: argparse.Namespace) -> int:
    """The `synth merge` command: several datasets into one; exit 3 when some conversations were left
    out."""
    summary = merge_datasets(args.out, args.inputs)
    print(summary.format(Path(args.out)))
    return EXIT_PARTIAL if summary.left_out else EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """The `synth check` command: every turn transcribed by an ASR model and the turns over the word
    error rate threshold listed; exit 3 when any failed."""
    from ..asr.recognizer import Recognizer

    recognizer = Recognizer(args.asr_model)
    total = len(open_dataset(args.dataset))
    bar = None if args.quiet else tqdm(total=total, unit="conv", file=sys.stderr, dynamic_ncols=True)
    try:
        report = check_dataset(
            args.dataset,
            recognizer,
            args.threshold,
            write=not args.no_write,
            progress=(lambda _cid: bar.update(1)) if bar is not None else None,
        )
    finally:
        if bar is not None:
            bar.close()
    print(report.format(args.worst))
    return EXIT_PARTIAL if report.failed else EXIT_OK
