"""`synth generate` and `synth voices`: dialogs to a dataset, and the voice catalog."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .. import api
from ..dialogs.sessions import SessionConfig
from ..errors import ConfigError
from ..presets import PRESETS
from ..produce.pipeline import LONG_TURNS, PipelineConfig
from ..produce.timeline import GapDistribution
from .common import (
    EXIT_OK,
    EXIT_PARTIAL,
    add_asr_check_args,
    add_batch_args,
    add_casting_args,
    add_duplex_args,
    add_engine_args,
    add_gap_args,
    add_noise_args,
    add_parser,
    add_run_args,
    add_sample_args,
    add_source_args,
    asr_check_from,
    batch_from,
    casting_from,
    chat_from,
    conversation_audio_from,
    engine_from,
    limits_from,
    samples_from,
    shard_from,
)


def register(sub: Any) -> None:
    g = add_parser(
        sub,
        "generate",
        "synthesize dialogs into a dataset folder",
        "Synthesize dialogs into <out>/conversations/<id>/ with manifest.jsonl; "
        "resumes an interrupted run by default.",
    )
    add_source_args(g)
    g.add_argument("--out", required=True, help="dataset root folder")
    g.add_argument(
        "--for",
        dest="for_model",
        default=None,
        choices=list(PRESETS),
        help="set everything a trainer of this kind needs (options given explicitly win): "
        + "; ".join(f"{p.name}: {p.summary}" for p in PRESETS.values()),
    )
    add_engine_args(g)
    add_noise_args(g)
    add_gap_args(g, "seed for casting and turn gaps")
    add_duplex_args(g)
    g.add_argument(
        "--long-turns",
        default=PipelineConfig.long_turns,
        choices=LONG_TURNS,
        help="a turn longer than the speech profile allows (llama-omni: 30 s): split it at sentence "
        "boundaries into turns that fit, or reject the dialog",
    )
    g.add_argument(
        "--voice",
        action="append",
        default=[],
        metavar="SPEAKER=VOICE",
        help="cast SPEAKER to VOICE in every dialog (repeatable; see `synth voices`), or to a voice "
        "with attributes: A=gender:female, B=gender:male,accent:Scottish",
    )
    add_casting_args(g)
    add_run_args(g)
    ss = g.add_argument_group("sessions (long conversations from consecutive dialogs)")
    ss.add_argument(
        "--session-tokens",
        type=int,
        default=None,
        help="join consecutive dialogs into sessions of about this many total_tokens",
    )
    ss.add_argument(
        "--session-minutes",
        type=float,
        default=None,
        help="join consecutive dialogs into sessions of about this many minutes of speech",
    )
    ss.add_argument(
        "--session-mix",
        default=None,
        metavar="STAGE:WEIGHT,...",
        help="a session size drawn per session over curriculum stages, e.g. "
        "8k:0.4,16k:0.3,32k:0.2,64k:0.1 (each aims inside its stage's band)",
    )
    ss.add_argument(
        "--session-windows",
        type=int,
        default=None,
        metavar="N",
        help="sessions that fill N windows of --window-sec (trainers that cut each file into windows "
        "and carry state across them): speech reaches into the last tenth of the last window and "
        "conversation.wav ends exactly at N windows",
    )
    ss.add_argument(
        "--window-sec", type=float, default=SessionConfig.window_sec, help="the trainer's window, seconds"
    )
    ss.add_argument(
        "--session-tolerance",
        type=float,
        default=SessionConfig.tolerance,
        help="how far from --session-tokens or --session-minutes a session may land (a share)",
    )
    ss.add_argument(
        "--session-pause",
        type=float,
        default=SessionConfig.pause_sec,
        help="seconds of silence between the dialogs joined in a session",
    )
    g.add_argument(
        "--in-flight",
        type=int,
        default=api.GenerateOptions.in_flight,
        help="conversations synthesized at once; their turns share engine batches, which "
        "keeps a GPU busy (coqui); 1: one conversation's turns per batch",
    )
    add_batch_args(g, "across the conversations in flight")
    add_asr_check_args(g)
    add_sample_args(g, "--sample-format")
    g.set_defaults(run=cmd_generate)

    v = add_parser(
        sub,
        "voices",
        "list the voice catalog",
        "List every voice of the engine's model, with its parameters.",
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
    b = v.add_argument_group("blended voices (coqui models)")
    b.add_argument(
        "--blend",
        type=int,
        default=0,
        metavar="N",
        help="make up to N new voices by mixing the model's speaker embeddings, keeping those the "
        "speaker encoder finds distinct (--min-distance) and the ASR understands (--max-wer); "
        "written to --blend-out, used with --blends FILE",
    )
    b.add_argument(
        "--blend-out", default=None, help="blends file to write (default: <model cache>/blends/<model>.json)"
    )
    b.add_argument(
        "--min-distance", type=float, default=0.3, help="least measured distance to every other voice"
    )
    b.add_argument("--max-wer", type=float, default=0.3, help="highest word error rate of a kept blend")
    b.add_argument("--blend-seed", type=int, default=0, help="seed of the candidate mixes")
    v.set_defaults(run=cmd_voices)


# Where each preset setting (synth.presets) lands among this command's flags.
PRESET_FLAGS = {
    "samples.speech_profile": "speech_profile",
    "samples.system_prompt": "system_prompt",
    "samples.format": "sample_format",
    "pipeline.long_turns": "long_turns",
    "pipeline.gap": "gap",
    "pipeline.backchannels": "backchannels",
    "conversation_audio.sample_rate": "conversation_rate",
    "sessions.windows": "session_windows",
    "sessions.window_sec": "window_sec",
}


def prepare(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """`--for NAME`: the preset's settings become the defaults of `generate`'s flags, so that
    flags given explicitly still win (an explicit session size replaces the preset's)."""
    name = next((a.split("=", 1)[1] for a in argv if a.startswith("--for=")), None)
    if name is None and "--for" in argv and argv.index("--for") + 1 < len(argv):
        name = argv[argv.index("--for") + 1]
    if name not in PRESETS or not argv or argv[0] != "generate":
        return
    sized = any(a.startswith(("--session-tokens", "--session-minutes", "--session-mix")) for a in argv)
    defaults: dict[str, Any] = {}
    for key, value in PRESETS[name].settings.items():
        if key.startswith("sessions.") and sized:
            continue
        defaults[PRESET_FLAGS[key]] = value
        if key.startswith("conversation_audio."):
            defaults["conversation_audio"] = True
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.choices["generate"].set_defaults(**defaults)


def parse_voice_override(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        speaker, sep, voice = item.partition("=")
        if not sep or not speaker or not voice:
            raise ConfigError("voice", "expected SPEAKER=VOICE", item)
        out[speaker] = voice
    return out


def sessions_from(args: argparse.Namespace) -> SessionConfig | None:
    given = (args.session_tokens, args.session_minutes, args.session_mix, args.session_windows)
    if all(x is None for x in given):
        return None
    mix = SessionConfig.parse_mix(args.session_mix) if args.session_mix else ()
    return SessionConfig(
        tokens=args.session_tokens,
        minutes=args.session_minutes,
        mix=mix,
        windows=args.session_windows,
        window_sec=args.window_sec,
        pause_sec=args.session_pause,
        tolerance=args.session_tolerance,
    )


def cmd_generate(args: argparse.Namespace) -> int:
    options = api.GenerateOptions(
        engine=engine_from(args),
        pipeline=PipelineConfig(
            seed=args.seed,
            gap=GapDistribution.parse(args.gap),
            voice_override=parse_voice_override(args.voice),
            long_turns=args.long_turns,
            backchannels=args.backchannels,
            **casting_from(args),
        ),
        conversation_audio=conversation_audio_from(args),
        samples=samples_from(args),
        tokenizer=args.tokenizer,
        limits=limits_from(args),
        batch=batch_from(args),
        in_flight=args.in_flight,
        asr_check=asr_check_from(args),
        on_error=args.on_error,
        resume=args.resume,
        resume_with_changes=args.resume_with_changes,
        repair=args.repair,
        progress=not args.quiet,
        shard=shard_from(args),
        sessions=sessions_from(args),
    )
    summary = api.generate(
        args.dialogs,
        args.out,
        options,
        split=args.split,
        fmt=args.format,
        limit=args.limit,
        chat=chat_from(args),
    )
    print(summary.format())
    return EXIT_OK if summary.complete else EXIT_PARTIAL


def cmd_voices(args: argparse.Namespace) -> int:
    if args.blend:
        return _blend(args)
    engine = api.load_engine(engine_from(args))
    if args.measure:
        return _measure(engine, args)
    for voice in engine.voices():
        if args.json:
            print(json.dumps(voice.to_dict()))
        else:
            params = " ".join(f"{k}={v}" for k, v in voice.params.items() if v is not None)
            meta = " ".join(f"{k}={v}" for k, v in voice.meta.items())
            print(f"{voice.id:28s} {voice.engine:6s} {voice.model:24s} {params}  {meta}")
    return EXIT_OK


def _blend(args: argparse.Namespace) -> int:
    from pathlib import Path

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
    report = catalog_report(engine.voices(), api.casting_distance(engine, config))
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
