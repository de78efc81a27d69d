"""`synth memory-score`: score a model's answers to a dataset's memory probes (docs/memory.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..workflows.memory_score import (
    DEFAULT_BANDS_MIN,
    parse_bands,
    plot_report,
    require_matplotlib,
    score_dataset,
)
from .common import EXIT_OK, add_parser


def register(sub: Any) -> None:
    """The `synth memory-score` command."""
    ms = add_parser(
        sub,
        "memory-score",
        "score answers to a dataset's memory probes",
        'Score ANSWERS.jsonl (one {"probe_id", "answer"} per line; "prediction" is taken too) '
        "against the memory probes of a dataset as LoCoMo's evaluation does (normalized, stemmed "
        "token F1; per part for multi-hop, up to ';' for open-domain, 'not mentioned' for "
        "adversarial). A probe with no answer scores 0. Prints the mean score overall, by category "
        "and by how long before the question its latest evidence was said.",
    )
    ms.add_argument("dataset", help="dataset root folder")
    ms.add_argument("answers", help="the answers: a JSONL file, one object per probe")
    ms.add_argument(
        "--bands",
        default=",".join(f"{b:g}" for b in DEFAULT_BANDS_MIN),
        help="edges of the distance bands in minutes, increasing",
    )
    ms.add_argument(
        "--json", default=None, metavar="PATH", help="write the full report (every probe's score)"
    )
    ms.add_argument("--plot", default=None, metavar="PATH", help="draw mean score by distance band (PNG)")
    ms.set_defaults(run=cmd_memory_score)


def cmd_memory_score(args: argparse.Namespace) -> int:
    """The `synth memory-score` command: prints the scores, and writes them as JSON or a plot when
    asked."""
    edges = parse_bands(args.bands)
    if args.plot:
        require_matplotlib()
    report = score_dataset(args.dataset, args.answers, edges)
    print(report.format())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    if args.plot:
        plot_report(report, args.plot)
    return EXIT_OK
