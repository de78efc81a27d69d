"""`synth score`: per-turn quality scores added to a finished dataset (synth.workflows.score)."""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

from ..dataset.fingerprint import read_options
from ..dataset.writer import Holder
from ..errors import NotAvailable
from ..quality import QualityConfig
from .common import EXIT_OK, add_parser
from .engine import add_engine_args, engine_from
from .flags import add_fields, config_from


def register(sub: Any) -> None:
    """Add `synth score` to the command line."""
    sp = add_parser(
        sub,
        "score",
        "add per-turn quality scores to a dataset",
        "Score every turn of a finished dataset (or a deterministic sample) and store the scores in "
        "its metadata (a `quality` block per turn) and manifest (a summary per conversation): "
        "intelligibility (WER/CER of Whisper tiny.en's transcript), dnsmos (DNSMOS P.835/P.808), "
        "speaker (similarity to its voice's reference, and to the other voices), signal (clipping, "
        "loudness, edge silence, speaking rate). Crash-safe and resumable: a run started again scores "
        "only what is missing. The speaker scorer measures each voice speaking reference sentences "
        "with the engine (by default the models dataset.json records; VITS noise off). See docs/quality.md.",
    )
    sp.add_argument("dataset", help="dataset root folder")
    add_fields(sp, QualityConfig)
    sp.add_argument(
        "--wait",
        action="store_true",
        help="wait for the tools using the dataset (generate, serve, merge, export...) to finish, "
        "instead of refusing at once; no other tool starts on it meanwhile",
    )
    sp.add_argument(
        "--checkpoint-sec",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="switch the scores made so far into the dataset this often (a kill loses at most this much work)",
    )
    add_engine_args(sp)
    sp.set_defaults(run=cmd_score)


# what each scorer imports (the quality extra installs them all)
NEEDS = {
    "intelligibility": ("faster_whisper",),
    "dnsmos": ("speechmos", "librosa"),
    "speaker": ("resemblyzer", "torch"),
}


def recorded_models(root: Path) -> list[str]:
    """The engine models a dataset records in dataset.json (`engine[i].model`; none for the
    embedded voice), so that `synth score` measures its voices with what made them."""
    options = read_options(root) or {}
    keys = sorted(
        (k for k in options if re.fullmatch(r"engine\[\d+\]\.model", k)), key=lambda k: int(k[7:-7])
    )
    return [str(options[k]) for k in keys if options[k]]


def cmd_score(args: argparse.Namespace) -> int:
    """Score the dataset (engine loaded only for the speaker scorer) and print what was done."""
    from ..workflows.score import ScoreSettings, score_dataset

    config = config_from(args, QualityConfig)
    missing = sorted(
        {m for name in config.scorers for m in NEEDS.get(name, ()) if importlib.util.find_spec(m) is None}
    )
    if missing:
        raise NotAvailable(
            "scorers",
            f"{', '.join(config.scorers)} need(s) {', '.join(missing)}, not installed: pip install 'synth[quality]'",
        )
    engine, cache = None, None
    if "speaker" in config.scorers:
        from ..engines import load_engine
        from ..engines.piper_voices import default_cache

        args.noise_scale, args.noise_w_scale = 0.0, 0.0  # a voice's reference is the voice alone
        if not args.model and args.engine is None:  # the models the dataset was made with
            args.model = recorded_models(Path(args.dataset))
        engine = load_engine(engine_from(args))
        cache = Path(args.model_cache).expanduser() if args.model_cache else default_cache()

    def waiting(holders: list[Holder]) -> None:
        names = "; ".join(h.describe() for h in holders) or "another process"
        print(f"waiting for {names} to finish (--wait) ...", file=sys.stderr, flush=True)

    settings = ScoreSettings(
        engine=engine, cache=cache, wait=args.wait, on_wait=waiting, checkpoint_sec=args.checkpoint_sec
    )
    summary = score_dataset(args.dataset, config, settings)
    rate = summary.audio_sec / summary.seconds if summary.seconds else 0.0
    sample = f", {summary.sampled_out} turn(s) outside the sample" if summary.sampled_out else ""
    print(
        f"scored {summary.turns} turn(s) of {summary.conversations} conversation(s) "
        f"({summary.audio_sec:.1f} s of audio, {rate:.2f}x real time) with "
        f"{', '.join(f'{k} {v}' for k, v in summary.scorers.items())}; "
        f"{summary.up_to_date} turn(s) already scored{sample}"
    )
    return EXIT_OK
