"""`synth report`: a dataset's figures and plots as a self-contained page to look at."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..workflows.report import report_summary, write_report
from .common import EXIT_OK, add_parser


def register(sub: Any) -> None:
    """The `synth report` command."""
    rp = add_parser(
        sub,
        "report",
        "write a dataset report (HTML with plots, and report.json)",
        "Write OUT/index.html (plots beside it, the worst turns' audio in OUT/audio/, nothing fetched "
        "from the network) and OUT/report.json: hours, conversations, turns, speakers and voices; "
        "durations; tokens against the curriculum stages; gaps and overlaps against the configured "
        "distribution; backchannels; session sizes against their targets; memory-probe distances; "
        "per-turn scores with the worst turns to listen to; the voices' distances; the provenance. "
        "Needs matplotlib.",
    )
    rp.add_argument("dataset", help="dataset root folder")
    rp.add_argument("out", help="the report's folder (made if missing)")
    rp.set_defaults(run=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    """The `synth report` command: writes the report and prints its summary."""
    data = write_report(args.dataset, args.out)
    print(report_summary(data, Path(args.out)))
    return EXIT_OK
