"""What the command groups share: option groups whose defaults come from the library's config
dataclasses (so `--help` shows them and each lives once), flags generated from an options
dataclass, and the translation of parsed arguments into those configs."""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

from ..api import AsrCheckConfig
from ..dataset.augment import AugmentConfig
from ..dataset.mixdown import ConversationAudioConfig
from ..dialogs.build import DialogLimits
from ..dialogs.sources import FORMATS as SOURCE_FORMATS
from ..dialogs.sources import ChatFields
from ..engines import ENGINES, EngineConfig, PiperConfig, engine_configs
from ..engines.batching import BatchConfig
from ..engines.config import DEVICES
from ..errors import ConfigError
from ..produce.timeline import GapDistribution
from ..samples.builder import FORMATS, SYSTEM_PROMPTS, SampleConfig
from ..samples.tokenizer import DEFAULT_TOKENIZER
from ..workflows.sharding import Shard

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
DEFAULT_GAP = GapDistribution().spec()


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default (unless it is None or a flag that is off)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "%(default)" in text:
            return text
        return super()._get_help_string(action) or text


def env(name: str, default: Any) -> Any:
    """A default that an environment variable SYNTH_<NAME> overrides (for containers)."""
    value = os.environ.get(f"SYNTH_{name}")
    if value is None:
        return default
    return (
        type(default)(value) if isinstance(default, (int, float)) and not isinstance(default, bool) else value
    )


def add_parser(sub: Any, name: str, help: str, description: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=description, formatter_class=HelpFormatter)


def add_options(parser: argparse.ArgumentParser | Any, options: type) -> None:
    """One flag per field of an options dataclass (--field-name), with its default and help."""
    for f in dataclasses.fields(options):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        if str(f.type) == "bool":
            parser.add_argument(flag, action="store_true", help=help_text)
            continue
        kind = {"int": int, "float": float}.get(str(f.type).split(" ")[0], str)
        parser.add_argument(flag, type=kind, default=f.default, help=help_text)


def options_from(args: argparse.Namespace, options: type) -> Any:
    return options(**{f.name: getattr(args, f.name) for f in dataclasses.fields(options)})


# -- engine ------------------------------------------------------------------------------------
def add_engine_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine")
    g.add_argument(
        "--engine",
        default=env("ENGINE", None),
        choices=ENGINES,
        help="TTS engine; default: recognized from each --model (piper without one)",
    )
    g.add_argument(
        "--model",
        action="append",
        default=[m for m in env("MODEL", "").split(",") if m],
        help="repeatable: several models make one catalog. piper: NAME.onnx (with NAME.onnx.json) "
        "or a voice name (en_US-libritts_r-medium, downloaded once into --model-cache); default "
        "the embedded en_US-joe-medium voice; coqui: a model name (tts_models/en/vctk/vits) or a "
        "folder with config.json, checkpoint and speaker_ids.json",
    )
    g.add_argument(
        "--device",
        default=env("DEVICE", PiperConfig.device),
        choices=DEVICES,
        help="where the engine runs (auto: CUDA when available)",
    )
    g.add_argument(
        "--half", action="store_true", default=env("HALF", "") == "1", help="coqui: float16 on CUDA"
    )
    g.add_argument(
        "--speaker-info",
        default=env("SPEAKER_INFO", None),
        help="speaker table for voice metadata (gender, accent...), matched by speaker name: "
        "VCTK's speaker-info.txt, a TSV, or LibriTTS/LibriSpeech SPEAKERS.txt (coqui default: "
        "speaker-info.txt beside the model)",
    )
    g.add_argument(
        "--blends",
        default=env("BLENDS", None),
        help="a blends file (synth voices --blend N writes it): add its blended voices (coqui and "
        "multi-speaker piper models)",
    )
    g.add_argument(
        "--model-cache",
        default=env("MODEL_CACHE", None),
        help="where models loaded by name are downloaded once and looked up offline (piper voices "
        "and coqui models; default $SYNTH_MODEL_CACHE, else ~/.cache/synth/models)",
    )


def add_noise_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--noise-scale",
        type=float,
        default=None,
        help="VITS noise (default: the model's); 0 with --noise-w 0 makes audio deterministic",
    )
    p.add_argument(
        "--noise-w",
        dest="noise_w_scale",
        type=float,
        default=None,
        help="VITS duration noise (default: the model's)",
    )


def engine_from(args: argparse.Namespace) -> tuple[EngineConfig, ...]:
    """One engine config per --model (the engine of each recognized from it)."""
    return engine_configs(
        args.engine,
        args.model,
        device=args.device,
        half=args.half,
        speaker_info=args.speaker_info,
        model_cache=args.model_cache,
        blends=args.blends,
        noise_scale=getattr(args, "noise_scale", None),
        noise_w_scale=getattr(args, "noise_w_scale", None),
    )


# -- dialogs -----------------------------------------------------------------------------------
def add_source_args(p: argparse.ArgumentParser, limits: DialogLimits = DialogLimits()) -> None:
    g = p.add_argument_group("dialogs")
    g.add_argument(
        "--dialogs",
        required=True,
        help="a .jsonl file, DailyDialog's dialogues_*.txt, a parquet file or folder, "
        "'dailydialog' (Hugging Face hub) or 'hf:<dataset id>'",
    )
    g.add_argument("--format", default="auto", choices=SOURCE_FORMATS, help="the source's format")
    g.add_argument("--split", default=None, help="dataset split (Hugging Face sources: default train)")
    g.add_argument("--limit", type=int, default=None, help="read at most this many dialogs")
    add_limit_args(g, limits)
    add_chat_args(g)


def add_chat_args(g: Any) -> None:
    g.add_argument(
        "--dialog-field",
        default=None,
        help="chat formats: the field holding the list of messages (default: messages, or "
        "ShareGPT's conversations)",
    )
    g.add_argument(
        "--speaker-field",
        default=None,
        help="chat formats: the field of a message naming its speaker (default: role / from)",
    )
    g.add_argument(
        "--text-field",
        default=None,
        help="chat formats: the field of a message holding its text (default: content / value)",
    )
    g.add_argument(
        "--roles",
        default=None,
        metavar="ROLE=SPEAKER,...",
        help="chat formats: speaker labels for roles (default: user/human -> user, "
        "assistant/gpt/bot -> assistant); system and tool messages are dropped",
    )


def chat_from(args: argparse.Namespace) -> ChatFields:
    return ChatFields(
        args.dialog_field, args.speaker_field, args.text_field, ChatFields.parse_roles(args.roles)
    )


def add_limit_args(g: Any, limits: DialogLimits, from_env: bool = False) -> None:
    def default(name: str, value: int) -> int:
        return env(name, value) if from_env else value

    g.add_argument(
        "--max-turns",
        type=int,
        default=default("MAX_TURNS", limits.max_turns),
        help="reject dialogs with more turns",
    )
    g.add_argument(
        "--max-turn-chars",
        type=int,
        default=default("MAX_TURN_CHARS", limits.max_turn_chars),
        help="reject turns with more characters",
    )
    g.add_argument(
        "--max-total-chars",
        type=int,
        default=default("MAX_TOTAL_CHARS", limits.max_total_chars),
        help="reject dialogs with more characters in all",
    )


def limits_from(args: argparse.Namespace) -> DialogLimits:
    return DialogLimits(
        max_turns=args.max_turns, max_turn_chars=args.max_turn_chars, max_total_chars=args.max_total_chars
    )


# -- training samples --------------------------------------------------------------------------
def add_sample_args(p: argparse.ArgumentParser, *format_flags: str) -> None:
    g = p.add_argument_group("training samples")
    g.add_argument(
        "--tokenizer",
        default=DEFAULT_TOKENIZER,
        help="a Llama 3 name (embedded, offline), a local tokenizer folder or a hub id",
    )
    g.add_argument(
        *format_flags,
        dest="sample_format",
        default=SampleConfig.format,
        choices=FORMATS,
        help="chat: target = next turn; transcribe: target = the turn's own words",
    )
    g.add_argument(
        "--pad-multiple",
        type=int,
        default=SampleConfig.pad_multiple,
        help="pad sequences to a multiple of this",
    )
    g.add_argument(
        "--speech-profile",
        default=SampleConfig.speech_profile,
        help="how speech positions are counted in total_tokens: rate:N (N per second of audio) or "
        "llama-omni (300 per turn, Whisper's 30 s window; no turn may be longer than 30 s)",
    )
    g.add_argument(
        "--speech-tokens-per-sec",
        type=float,
        default=None,
        help="the same as --speech-profile rate:N",
    )
    g.add_argument(
        "--system-prompt",
        default="default",
        help="the samples' system prompt: a text, or a preset: "
        + ", ".join(f"{k!r}" for k in SYSTEM_PROMPTS)
        + " (llama-omni: the prompt of LLaMA-Omni's conv_llama_3 template)",
    )


def samples_from(args: argparse.Namespace) -> SampleConfig:
    profile = args.speech_profile
    if args.speech_tokens_per_sec is not None:
        profile = f"rate:{args.speech_tokens_per_sec:g}"
    return SampleConfig(
        format=args.sample_format,
        pad_multiple=args.pad_multiple,
        speech_profile=profile,
        system_prompt=args.system_prompt,
    )


# -- batching, ASR check, runs -----------------------------------------------------------------
def add_batch_args(p: argparse.ArgumentParser, across: str) -> None:
    p.add_argument(
        "--max-batch",
        type=int,
        default=env("MAX_BATCH", BatchConfig.max_batch),
        help=f"turns (sentence chunks) per engine call {across} (dynamic batching)",
    )
    p.add_argument(
        "--max-wait-ms",
        type=float,
        default=env("MAX_WAIT_MS", BatchConfig.max_wait_ms),
        help="longest wait for a batch to fill",
    )
    p.add_argument(
        "--max-batch-chars",
        type=int,
        default=env("MAX_BATCH_CHARS", BatchConfig.max_batch_chars),
        help="characters per engine call (bounds GPU memory)",
    )


def batch_from(args: argparse.Namespace) -> BatchConfig:
    return BatchConfig(args.max_batch, args.max_wait_ms, args.max_batch_chars)


def add_asr_check_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("ASR check")
    g.add_argument(
        "--asr-check",
        action="store_true",
        help="transcribe each synthesized turn and re-synthesize it if its word error "
        "rate is over --asr-threshold (results in metadata)",
    )
    g.add_argument("--asr-model", default=None, help="faster-whisper model (default: embedded tiny.en)")
    g.add_argument(
        "--asr-threshold",
        type=float,
        default=AsrCheckConfig.threshold,
        help="word error rate that fails a turn",
    )
    g.add_argument(
        "--asr-retries", type=int, default=AsrCheckConfig.retries, help="re-syntheses per failing turn"
    )


def asr_check_from(args: argparse.Namespace) -> AsrCheckConfig | None:
    if not args.asr_check:
        return None
    return AsrCheckConfig(args.asr_model, args.asr_threshold, args.asr_retries)


def add_gap_args(p: argparse.ArgumentParser, seed_help: str, from_env: bool = False) -> None:
    p.add_argument("--seed", type=int, default=env("SEED", 0) if from_env else 0, help=seed_help)
    p.add_argument(
        "--gap",
        default=env("GAP", DEFAULT_GAP) if from_env else DEFAULT_GAP,
        help="offset from the end of one turn to the start of the next, in seconds: fixed:X, "
        "uniform:LO,HI, normal:MEAN,STD or lognormal:MEDIAN,SIGMA (clipped to [0.05, 2]), or "
        "'conversational' (normal:0.2,0.45 clipped to [-0.8, 2]: about a third of speaker changes "
        "overlap, as in real conversation; see docs/full-duplex.md)",
    )


def add_casting_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("casting (docs/voices.md)")
    g.add_argument(
        "--cast-by",
        default="model",
        choices=("model", "measured"),
        help="how apart voices sound: the model's own measure, or distances between speaker-encoder "
        "embeddings of every voice (computed once per model, kept in --model-cache)",
    )
    g.add_argument(
        "--min-voice-distance",
        type=float,
        default=None,
        help="keep the speakers of a conversation at least this far apart when the catalog allows "
        "(default 0.22 by the model, 0.3 measured)",
    )


def casting_from(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "cast_by": args.cast_by,
        "min_voice_distance": args.min_voice_distance,
        "voice_cache": args.model_cache,
    }


def add_duplex_args(p: argparse.ArgumentParser, backchannels: bool = True) -> None:
    """Full-duplex data: backchannels (synthesis only), two-channel audio and its augmentation."""
    g = p.add_argument_group("full-duplex data (docs/full-duplex.md)")
    if backchannels:
        g.add_argument(
            "--backchannels",
            type=float,
            default=0.0,
            metavar="P",
            help="chance of a listener's backchannel ('mm-hm') at each opportunity in a speaker's "
            "longer turns (one per turn of 2 s, one more every 5 s); listed as events, heard in "
            "conversation.wav, never turns",
        )
    g.add_argument(
        "--conversation-audio",
        action="store_true",
        help="also write conversation.wav: two channels, the main speaker on channel 0, everyone "
        "else on channel 1, every turn and event at its start time",
    )
    g.add_argument(
        "--conversation-rate",
        type=int,
        default=ConversationAudioConfig.sample_rate,
        metavar="HZ",
        help="conversation.wav's rate: 24000 (Mimi's) is full band, made from the engine's own audio; "
        "16000 copies the turn WAVs sample for sample",
    )
    g.add_argument(
        "--main-speaker",
        default=None,
        metavar="LABEL",
        help="speaker label on channel 0 (e.g. assistant); default and where a conversation lacks "
        "it: its first speaker",
    )
    g.add_argument(
        "--augment",
        action="store_true",
        help="augment channel 1 of conversation.wav (gain, noise, reverb; seeded, recorded in "
        "metadata); the per-turn WAVs stay clean",
    )
    a = AugmentConfig()
    g.add_argument("--augment-gain", default=_range(a.gain_db), metavar="LO,HI", help="gain range, dB")
    g.add_argument(
        "--augment-snr",
        default=_range(a.snr_db),
        metavar="LO,HI",
        help="signal-to-noise range, dB ('none': no noise)",
    )
    g.add_argument("--augment-noise", default=a.noise, help="white, pink or a folder of noise recordings")
    g.add_argument(
        "--augment-reverb", type=float, default=a.reverb, metavar="P", help="chance of reverberation"
    )
    g.add_argument(
        "--augment-rt60", default=_range(a.rt60_sec), metavar="LO,HI", help="reverberation time range, s"
    )


def _range(r: tuple[float, float] | None) -> str:
    return "none" if r is None else f"{r[0]:g},{r[1]:g}"


def _parse_range(text: str, option: str) -> tuple[float, float] | None:
    if text == "none":
        return None
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(option, "expected LO,HI", text) from None
    return lo, hi


def conversation_audio_from(args: argparse.Namespace) -> ConversationAudioConfig | None:
    if not args.conversation_audio:
        if args.augment or args.main_speaker:
            raise ConfigError("augment" if args.augment else "main_speaker", "needs --conversation-audio")
        return None
    augment = None
    if args.augment:
        augment = AugmentConfig(
            gain_db=_parse_range(args.augment_gain, "augment_gain") or (0.0, 0.0),
            snr_db=_parse_range(args.augment_snr, "augment_snr"),
            noise=args.augment_noise,
            reverb=args.augment_reverb,
            rt60_sec=_parse_range(args.augment_rt60, "augment_rt60") or AugmentConfig.rt60_sec,
        )
    return ConversationAudioConfig(
        main_speaker=args.main_speaker, augment=augment, sample_rate=args.conversation_rate
    )


def add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--on-error",
        default="skip",
        choices=("skip", "fail"),
        help="skip: list a bad item in failures.jsonl and go on (exit 3 at the end); "
        "fail: stop at the first one (exit 1)",
    )
    p.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="skip conversations already in the manifest and clean up an interrupted "
        "run; --no-resume refuses a non-empty --out",
    )
    p.add_argument(
        "--resume-with-changes",
        action="store_true",
        help="resume a dataset made with other options (dataset.json says which) instead of refusing",
    )
    p.add_argument(
        "--repair",
        action="store_true",
        help="make again the finished conversations whose files are not what was written (their "
        "integrity records say so); without it they are reported and the run exits 3",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="make only shard I of N of the source (a stable partition by conversation id; "
        "N machines, one shard each, into one shared or N separate datasets)",
    )


def shard_from(args: argparse.Namespace) -> Shard | None:
    return Shard.parse(args.shard) if args.shard else None


def flag_for(parser: argparse.ArgumentParser, option: str) -> str:
    """The command-line flag of a library option name (a config field), or the name itself."""
    dest = {"servers": "server", "voice_override": "voice"}.get(option, option)
    for action in parser._actions:
        if action.dest == dest and action.option_strings:
            return action.option_strings[0]
    return option


def error_message(parser: argparse.ArgumentParser, exc: Exception) -> str:
    if isinstance(exc, ConfigError):
        return exc.render(flag_for(parser, exc.option))
    return str(exc)
