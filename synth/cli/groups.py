"""The option groups the commands share, built from the library's declarations (synth.options:
each config field's help, choices, default and parsing live with the field), and the parsed
arguments turned back into those configs. The engine's flags are in synth/cli/engine.py."""

from __future__ import annotations

import argparse
from typing import Any

from ..api import AsrCheckConfig, GenerateOptions
from ..dataset.augment import AugmentConfig
from ..dataset.mixdown import ConversationAudioConfig
from ..dialogs.build import DialogLimits
from ..dialogs.sources import FORMATS as SOURCE_FORMATS
from ..dialogs.sources import ChatFields
from ..engines.batching import BatchConfig
from ..errors import ConfigError
from ..options import declared, default_of
from ..produce.pipeline import PipelineConfig
from ..samples.builder import FORMATS as SAMPLE_FORMATS
from ..samples.builder import SampleConfig
from ..workflows.sharding import Shard
from .flags import add_fields, config_from, flag_of, renamed, values_of


# -- dialogs -----------------------------------------------------------------------------------
def add_source_args(p: argparse.ArgumentParser) -> None:
    """Where the dialogs come from (--dialogs, --format, --split, --limit), their limits and the
    chat field mapping."""
    g = p.add_argument_group("dialogs")
    g.add_argument(
        "--dialogs",
        required=True,
        help="a .jsonl file, DailyDialog's dialogues_*.txt, a parquet file or folder, 'dailydialog' "
        "(Hugging Face hub) or 'hf:<dataset id>'",
    )
    g.add_argument("--format", default="auto", choices=SOURCE_FORMATS, help="the source's format")
    g.add_argument("--split", default=None, help="dataset split (Hugging Face sources: default train)")
    g.add_argument("--limit", type=int, default=None, help="read at most this many dialogs")
    add_fields(g, DialogLimits)
    add_fields(g, ChatFields)


def add_limit_args(g: Any, limits: DialogLimits, from_env: bool = False) -> None:
    """The dialog limits' flags with `limits` as their defaults (SYNTH_<NAME> overriding them with
    `from_env`)."""
    add_fields(g, DialogLimits, from_env=from_env, defaults=vars(limits))


def chat_from(args: argparse.Namespace) -> ChatFields:
    """The chat field mapping (ChatFields) from the parsed arguments."""
    return config_from(args, ChatFields)


def limits_from(args: argparse.Namespace) -> DialogLimits:
    """The dialog limits (DialogLimits) from the parsed arguments."""
    return config_from(args, DialogLimits)


# -- training samples --------------------------------------------------------------------------
def add_sample_args(p: argparse.ArgumentParser, *format_flags: str) -> None:
    """The training-sample flags (the tokenizer and SampleConfig); `--format` too, as `synth
    tokenize` always had it, where a command asks for it."""
    g = p.add_argument_group("training samples")
    add_fields(g, GenerateOptions, skip=_all_but("tokenizer"))
    add_fields(g, SampleConfig, defaults={"system_prompt": "default"})
    if "--format" in format_flags:  # `synth tokenize --format`, as it always was
        g.add_argument(
            "--format", dest="sample_format", choices=list(SAMPLE_FORMATS), help="= --sample-format"
        )
    g.add_argument(
        "--speech-tokens-per-sec", type=float, default=None, help="the same as --speech-profile rate:N"
    )


def samples_from(args: argparse.Namespace) -> SampleConfig:
    """The SampleConfig from the parsed arguments (--speech-tokens-per-sec as a `rate:N` speech
    profile)."""
    extra = {}
    if args.speech_tokens_per_sec is not None:
        extra["speech_profile"] = f"rate:{args.speech_tokens_per_sec:g}"
    return config_from(args, SampleConfig, skip=extra, **extra)


# -- batching, ASR check, runs -----------------------------------------------------------------
def add_batch_args(p: argparse.ArgumentParser, across: str) -> None:
    """The engine batching flags (BatchConfig, SYNTH_<NAME> too); `across` says in the group's title
    what a batch spans."""
    add_fields(p.add_argument_group(f"batching ({across})"), BatchConfig, from_env=True)


def batch_from(args: argparse.Namespace) -> BatchConfig:
    """The BatchConfig from the parsed arguments."""
    return config_from(args, BatchConfig)


def add_asr_check_args(p: argparse.ArgumentParser) -> None:
    """--asr-check and its settings: a turn whose ASR word error rate is over the threshold is
    synthesized again."""
    g = p.add_argument_group("ASR check")
    g.add_argument(
        "--asr-check",
        action="store_true",
        help="transcribe each synthesized turn and re-synthesize it if its word error rate is over "
        "--asr-threshold (results in metadata)",
    )
    add_fields(g, AsrCheckConfig)


def asr_check_from(args: argparse.Namespace) -> AsrCheckConfig | None:
    """The AsrCheckConfig with --asr-check, else None."""
    return config_from(args, AsrCheckConfig) if args.asr_check else None


def add_gap_args(p: argparse.ArgumentParser, seed_help: str, from_env: bool = False) -> None:
    """The timeline flags: the seed and the distribution of the gaps between turns."""
    g = p.add_argument_group("timeline")
    add_fields(g, PipelineConfig, skip=_all_but("seed", "gap"), from_env=from_env)


def add_casting_args(p: argparse.ArgumentParser) -> None:
    """The casting flags: voice overrides, casting by attribute, the least voice distance and a
    voice per person."""
    g = p.add_argument_group("casting (docs/voices.md)")
    add_fields(
        g,
        PipelineConfig,
        skip=_all_but("voice_override", "cast_by", "min_voice_distance", "voice_per_person"),
    )


def pipeline_from(args: argparse.Namespace) -> PipelineConfig:
    """The declared pipeline options the command has (the measured embeddings' cache is the
    model cache)."""
    check_voice_flags(args)
    return config_from(args, PipelineConfig, voice_cache=getattr(args, "model_cache", None))


def check_voice_flags(args: argparse.Namespace) -> None:
    """`--voice natural` (a voice preset given to --voice, which casts one speaker): name the flag
    meant, and where the voices are listed."""
    from ..presets import VOICE_PRESETS

    for item in getattr(args, "voice", None) or []:
        if "=" in item:
            continue
        if item in VOICE_PRESETS:
            raise ConfigError(
                "voice_override",
                f"expected SPEAKER=VOICE; {item!r} is a voice preset: use --voices {item} (every speaker "
                f"from its catalog; `synth voices --voices {item}` lists it)",
                item,
            )
        raise ConfigError(
            "voice_override",
            "expected SPEAKER=VOICE (e.g. A=joe-vt0.88 or A=gender:female; `synth voices` lists the "
            "voices; --voices natural is the natural-voices preset)",
            item,
        )


def casting_from(args: argparse.Namespace) -> dict[str, Any]:
    """cast_by, min_voice_distance, voice_per_person and the embeddings' cache, for a
    PipelineConfig."""
    return {
        "cast_by": args.cast_by,
        "min_voice_distance": args.min_voice_distance,
        "voice_per_person": args.voice_per_person,
        "voice_cache": args.model_cache,
    }


def add_duplex_args(p: argparse.ArgumentParser, backchannels: bool = True) -> None:
    """Full-duplex data: backchannels (synthesis only), two-channel audio and its augmentation."""
    g = p.add_argument_group("full-duplex data (docs/full-duplex.md)")
    if backchannels:
        add_fields(g, PipelineConfig, skip=_all_but("backchannels"))
    g.add_argument(
        "--conversation-audio",
        action="store_true",
        help="also write conversation.wav: two channels, the main speaker on channel 0, everyone else on "
        "channel 1, every turn and event at its start time",
    )
    add_fields(g, ConversationAudioConfig)
    g.add_argument(
        "--augment",
        action="store_true",
        help="augment channel 1 of conversation.wav (gain, noise, reverb; seeded, recorded in metadata); "
        "the per-turn WAVs stay clean",
    )
    add_fields(g, AugmentConfig)


def conversation_audio_from(args: argparse.Namespace) -> ConversationAudioConfig | None:
    """The ConversationAudioConfig (with its augmentation) with --conversation-audio, else None; a
    flag that would change nothing is a usage error."""
    if not args.augment:  # an --augment-* setting alone would change nothing: say so
        given = values_of(args, AugmentConfig)
        changed = [flag_of(f) for f in declared(AugmentConfig) if given.get(f.name) != default_of(f)]
        if changed:
            raise ConfigError("augment", f"{', '.join(changed)} set, but augmentation is off: add --augment")
    if not args.conversation_audio:
        if args.augment or args.main_speaker:
            raise ConfigError("augment" if args.augment else "main_speaker", "needs --conversation-audio")
        return None
    augment = None
    if args.augment:
        values = values_of(args, AugmentConfig)
        values["gain_db"] = values["gain_db"] or (0.0, 0.0)
        values["rt60_sec"] = values["rt60_sec"] or AugmentConfig.rt60_sec
        try:
            augment = AugmentConfig(**values)
        except ConfigError as exc:
            raise renamed(exc, AugmentConfig) from None
    return config_from(args, ConversationAudioConfig, skip=("augment",), augment=augment)


def add_run_args(p: argparse.ArgumentParser) -> None:
    """How a run goes: --on-error, --resume, --resume-with-changes, --repair, --shard and
    --quiet."""
    g = p.add_argument_group("runs")
    add_fields(
        g, GenerateOptions, skip=_all_but("on_error", "resume", "resume_with_changes", "repair", "shard")
    )
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def run_from(args: argparse.Namespace) -> dict[str, Any]:
    """on_error, resume, resume_with_changes, repair, shard and progress for GenerateOptions."""
    skip = _all_but("on_error", "resume", "resume_with_changes", "repair", "shard")
    return {**values_of(args, GenerateOptions, skip=skip), "progress": not args.quiet}


def shard_from(args: argparse.Namespace) -> Shard | None:
    """The --shard given, or None."""
    return values_of(args, GenerateOptions, skip=_all_but("shard"))["shard"]


def _all_but(*names: str) -> set[str]:
    """Every declared option name of every config but `names` (to add a few of a class)."""
    import dataclasses

    fields = set()
    for cls in (GenerateOptions, PipelineConfig):
        fields |= {f.name for f in dataclasses.fields(cls)}
    return fields - set(names)
