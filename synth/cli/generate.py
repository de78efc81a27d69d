"""`synth generate`: dialogs to a dataset folder, with a preset per target model (--for)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from .. import api
from ..dataset.mixdown import ConversationAudioConfig
from ..dialogs.sessions import SessionConfig
from ..dialogs.sources.coherent import CoherentConfig
from ..presets import PRESETS, VOICE_PRESETS
from ..produce.gates import GateConfig
from ..produce.pipeline import PipelineConfig
from ..produce.probes import ProbeConfig
from ..samples.builder import SampleConfig
from .common import EXIT_OK, EXIT_PARTIAL, add_parser, folder_option
from .engine import add_engine_args, add_noise_args, engine_from
from .flags import add_fields, config_from, dest_of
from .groups import (
    add_asr_check_args,
    add_batch_args,
    add_casting_args,
    add_duplex_args,
    add_gap_args,
    add_run_args,
    add_sample_args,
    add_source_args,
    asr_check_from,
    batch_from,
    chat_from,
    conversation_audio_from,
    limits_from,
    pipeline_from,
    run_from,
    samples_from,
)

SECTIONS = {
    "samples": SampleConfig,
    "pipeline": PipelineConfig,
    "conversation_audio": ConversationAudioConfig,
    "sessions": SessionConfig,
}


def register(sub: Any) -> None:
    """Add `synth generate` and its flags (source, engines, pipeline, samples, sessions, run)."""
    g = add_parser(
        sub,
        "generate",
        "synthesize dialogs into a dataset folder",
        "Synthesize dialogs into <out>/conversations/<id>/ with manifest.jsonl; resumes an interrupted "
        "run by default. Only --dialogs and --out are needed; the examples at the end are the usual "
        "runs.",
        EXAMPLES,
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
    g.add_argument(
        "--voices",
        default=None,
        choices=list(VOICE_PRESETS),
        help="a voice preset instead of --model: "
        + "; ".join(f"{p.name}: {p.summary}" for p in VOICE_PRESETS.values()),
    )
    add_engine_args(g)
    add_noise_args(g)
    add_gap_args(g, "seed for casting and turn gaps")
    add_duplex_args(g)
    add_fields(g.add_argument_group("long turns"), PipelineConfig, skip=_but("long_turns"))
    add_casting_args(g)
    add_run_args(g)
    add_fields(g.add_argument_group("sessions (long conversations from consecutive dialogs)"), SessionConfig)
    memory = g.add_argument_group("coherent multi-session sources and memory probes (docs/memory.md)")
    add_fields(memory, CoherentConfig)
    add_fields(memory, ProbeConfig)
    add_fields(
        g.add_argument_group("speed (docs/cluster.md: sizing a task by its cores)"),
        api.GenerateOptions,
        skip=_but("in_flight", "workers", "threads"),
    )
    add_batch_args(g, "across the conversations in flight")
    add_asr_check_args(g)
    add_fields(g.add_argument_group("quality scores and gates (docs/quality.md)"), GateConfig)
    add_sample_args(g, "--sample-format")
    g.set_defaults(run=cmd_generate)


EXAMPLES = """examples (docs/usage.md says more):

  synth generate --dialogs examples/dialogs.jsonl --out dataset/      # the shipped examples
  synth generate --dialogs dailydialog --limit 1000 --out dd/         # DailyDialog from the hub
  synth generate --dialogs chats.jsonl --out ds/ --voices natural     # Kokoro's natural voices
  synth generate --dialogs chats.jsonl --out ds/ --for llama-omni     # set up for LLaMA-Omni
  synth generate --dialogs chats.jsonl --out ds/ --for moshi          # full duplex, moshi-finetune
  synth generate --dialogs chats.jsonl --out ds/ --voice A=joe-vt0.88 --seed 7
  synth generate --dialogs chats.jsonl --out ds/ --workers auto      # every core (docs/cluster.md)

A dialog per line of JSONL: {"conversation_id": "c1", "turns": [{"speaker": "A", "text": "Hi."}]};
`synth voices` lists the voices; `synth validate OUT` checks the result; run the same command
again to resume."""


def _but(*names: str) -> set[str]:
    fields = set()
    for cls in (api.GenerateOptions, PipelineConfig):
        fields |= {f.name for f in dataclasses.fields(cls)}
    return fields - set(names)


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
        section, name_ = key.split(".", 1)
        if section == "sessions" and sized:
            continue
        (field,) = [f for f in dataclasses.fields(SECTIONS[section]) if f.name == name_]
        defaults[dest_of(field)] = value
        if section == "conversation_audio":
            defaults["conversation_audio"] = True
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.choices["generate"].set_defaults(**defaults)


def sessions_from(args: argparse.Namespace) -> SessionConfig | None:
    """The session settings, or None when no --session-* flag is given (a run without sessions)."""
    given = (args.session_tokens, args.session_minutes, args.session_mix, args.session_windows)
    if all(x in (None, ()) for x in given):
        return None
    return config_from(args, SessionConfig)


def cmd_generate(args: argparse.Namespace) -> int:
    """The `synth generate` command: the dialogs into the --out dataset through the library; exit 3
    when the run was not complete (rejected items, damaged conversations, ASR failures)."""
    out = folder_option(args.out)
    options = _options(args)
    summary = api.generate(
        args.dialogs,
        out,
        options,
        split=args.split,
        fmt=args.format,
        max_dialogs=args.limit,
        chat=chat_from(args),
    )
    print(summary.format())
    return EXIT_OK if summary.complete else EXIT_PARTIAL


def _options(args: argparse.Namespace) -> api.GenerateOptions:
    engines = engine_from(args)
    pipeline = pipeline_from(args)
    if args.voices:
        engines, pipeline = VOICE_PRESETS[args.voices].apply(engines, pipeline, args.model_cache)
    return api.GenerateOptions(
        engine=engines,
        pipeline=pipeline,
        conversation_audio=conversation_audio_from(args),
        samples=samples_from(args),
        tokenizer=args.tokenizer,
        limits=limits_from(args),
        batch=batch_from(args),
        in_flight=args.in_flight,
        workers=args.workers,
        threads=args.threads,
        asr_check=asr_check_from(args),
        sessions=sessions_from(args),
        coherent=config_from(args, CoherentConfig),
        probes=config_from(args, ProbeConfig),
        quality=config_from(args, GateConfig),
        **run_from(args),
    )
