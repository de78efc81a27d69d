"""The `synth` command line: a thin layer over the library (argument parsing and printing)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Sequence

from . import __version__
from .errors import DialogError, SynthError, VoiceError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    env = os.environ.get
    g = p.add_argument_group("engine")
    g.add_argument("--engine", default=env("SYNTH_ENGINE", "piper"), choices=("piper", "coqui"),
                   help="TTS engine (default: piper)")
    g.add_argument("--model", default=env("SYNTH_MODEL"),
                   help="piper: NAME.onnx (with NAME.onnx.json), default the embedded "
                        "en_US-joe-medium voice; coqui: a model name (tts_models/en/vctk/vits) or "
                        "a folder with config.json, checkpoint and speaker_ids.json")
    g.add_argument("--device", default=env("SYNTH_DEVICE", "auto"), choices=("auto", "cpu", "cuda"))
    g.add_argument("--half", action="store_true", default=env("SYNTH_HALF") == "1",
                   help="coqui: float16 on CUDA")
    g.add_argument("--speaker-info", default=env("SYNTH_SPEAKER_INFO"),
                   help="coqui: VCTK-style speaker table (ID AGE GENDER ACCENTS REGION) for voice "
                        "metadata, matched by speaker name (default: speaker-info.txt beside the model)")
    g.add_argument("--model-cache", default=env("SYNTH_MODEL_CACHE"),
                   help="coqui: where models loaded by name are downloaded and looked up")


def _add_source_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("dialogs")
    g.add_argument("--dialogs", required=True,
                   help="a .jsonl file, DailyDialog's dialogues_*.txt, a parquet file or folder, "
                        "'dailydialog' (Hugging Face hub) or 'hf:<dataset id>'")
    g.add_argument("--format", default="auto", choices=("auto", "jsonl", "dailydialog-txt", "hf"))
    g.add_argument("--split", default=None, help="dataset split (Hugging Face sources: default train)")
    g.add_argument("--limit", type=int, default=None, help="read at most this many dialogs")
    g.add_argument("--max-turns", type=int, default=1000, help="reject dialogs with more turns")
    g.add_argument("--max-turn-chars", type=int, default=5000,
                   help="reject turns with more characters")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synth", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.description = "Turn text dialogs into multi-speaker conversational speech datasets."
    parser.add_argument("--version", action="version", version=f"synth {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("generate", help="synthesize dialogs into a dataset folder",
                       description="Synthesize dialogs into <out>/conversations/<id>/ with "
                                   "manifest.jsonl; resumes an interrupted run by default.")
    _add_source_args(g)
    g.add_argument("--out", required=True, help="dataset root folder")
    _add_engine_args(g)
    g.add_argument("--seed", type=int, default=0, help="seed for casting and turn gaps (default 0)")
    g.add_argument("--gap", default="normal:0.4,0.2",
                   help="gap between turns in seconds: fixed:X, uniform:LO,HI, normal:MEAN,STD or "
                        "lognormal:MEDIAN,SIGMA (default normal:0.4,0.2, clipped to [0.05, 2])")
    g.add_argument("--voice", action="append", default=[], metavar="SPEAKER=VOICE",
                   help="cast SPEAKER to VOICE in every dialog (repeatable); see `synth voices`")
    g.add_argument("--noise-scale", type=float, default=None,
                   help="VITS noise (default: the model's); 0 with --noise-w 0 makes audio deterministic")
    g.add_argument("--noise-w", type=float, default=None, help="VITS duration noise (default: the model's)")
    g.add_argument("--on-error", default="skip", choices=("skip", "fail"),
                   help="skip: log a bad dialog to failures.jsonl and go on (exit 3 at the end); "
                        "fail: stop at the first one (exit 1)")
    g.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="skip conversations already in the manifest and clean up an interrupted "
                        "run (default); --no-resume refuses a non-empty --out")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.add_argument("--in-flight", type=int, default=1,
                   help="conversations synthesized at once; their turns share engine batches, which "
                        "keeps a GPU busy (coqui); default 1: one conversation's turns per batch")
    _add_batch_args(g, "across the conversations in flight")
    _add_asr_check_args(g)
    _add_sample_args(g, "--sample-format")

    v = sub.add_parser("voices", help="list the voice catalog",
                       description="List every voice of the engine's model, with its parameters.")
    _add_engine_args(v)
    v.add_argument("--json", action="store_true", help="one JSON object per line")

    val = sub.add_parser("validate", help="check a dataset folder against the contract",
                         description="Check WAV format, transcripts, metadata, turn ids, durations "
                                     "and the manifest; exit 1 on any error.")
    val.add_argument("dataset", help="dataset root folder")
    val.add_argument("--json", action="store_true", help="print the report as JSON")
    sp = sub.add_parser("splits", help="write curriculum manifests by token budget",
                        description="Write <dataset>/splits/stage_<N>.jsonl: the manifest lines of "
                                    "the conversations whose total_tokens fit each stage.")
    sp.add_argument("dataset", help="dataset root folder")
    sp.add_argument("--stages", default="8192,16384,32768,65536",
                    help="increasing token budgets, e.g. 8192,16384 or 8k,16k (default 8k..64k)")
    sp.add_argument("--out", default=None, help="folder for the split manifests (default <dataset>/splits)")

    tk = sub.add_parser("tokenize", help="rewrite the training samples of a dataset",
                        description="Rebuild samples.jsonl and token counts of every conversation "
                                    "with another tokenizer or format.")
    tk.add_argument("dataset", help="dataset root folder")
    _add_sample_args(tk, "--format", "--sample-format")

    ex = sub.add_parser("export", help="export a dataset for other training code",
                        description="--to llama-omni OUT.json: LLaMA-Omni's training JSON; "
                                    "--to hf OUT_DIR: a Hugging Face dataset (save_to_disk).")
    ex.add_argument("dataset", help="dataset root folder")
    ex.add_argument("output", help="output file (llama-omni) or folder (hf)")
    ex.add_argument("--to", required=True, choices=("llama-omni", "hf"))
    ex.add_argument("--manifest", default=None, help="export only this split manifest")
    ex.add_argument("--relative", action="store_true",
                    help="llama-omni: speech paths relative to the dataset root (default absolute)")
    b = sub.add_parser("batch", help="send dialogs to synth servers",
                       description="Send every dialog of a source to one or more `synth serve` "
                                   "servers (round robin) with bounded concurrency; resumable.")
    b.add_argument("--server", action="append", required=True, metavar="HOST:PORT",
                   help="server address (repeatable: round robin across them)")
    _add_source_args(b)
    b.add_argument("--concurrency", type=int, default=8, help="dialogs in flight (default 8)")
    b.add_argument("--out", default=None,
                   help="also write every streamed conversation here (a local copy); conversations "
                        "already in its manifest are not sent again")
    b.add_argument("--failures", default="batch_failures.jsonl",
                   help="where to list failed dialogs with their reasons")
    b.add_argument("--token", default=os.environ.get("SYNTH_AUTH_TOKEN"), help="bearer token")
    b.add_argument("--tls", action="store_true", help="connect with TLS")
    b.add_argument("--seed", type=int, default=None, help="seed sent with every request")
    b.add_argument("--timeout", type=float, default=600.0, help="deadline per dialog in seconds")
    b.add_argument("--quiet", action="store_true", help="no progress bar")

    cv = sub.add_parser("convert", help="turn a recorded-speech corpus into a dataset",
                        description="Convert LibriSpeech or Common Voice into the dataset contract "
                                    "(16 kHz PCM16 turns, transcripts, metadata, samples).")
    cv.add_argument("corpus", choices=("librispeech", "commonvoice"))
    cv.add_argument("path", help="LibriSpeech subset folder (e.g. LibriSpeech/train-clean-360) or "
                                 "Common Voice language folder (with clips/ and *.tsv)")
    cv.add_argument("--out", required=True, help="dataset root folder")
    cv.add_argument("--split", default="train", help="Common Voice TSV: train, dev, test, validated...")
    cv.add_argument("--min-duration", type=float, default=None,
                    help="LibriSpeech: chapter chunks of at least this many seconds (shorter "
                         "chapters are skipped); default: one conversation per chapter")
    cv.add_argument("--truecase", action="store_true", help="LibriSpeech: true-case the transcripts")
    cv.add_argument("--turns", type=int, default=8, help="Common Voice: turns per conversation")
    cv.add_argument("--speakers", type=int, default=2, help="Common Voice: speakers per conversation")
    cv.add_argument("--limit", type=int, default=None, help="at most this many conversations")
    _add_run_args(cv)

    tr = sub.add_parser("transcribe", help="turn folders of audio files into a dataset with ASR",
                        description="Every folder with audio files becomes a conversation, its files "
                                    "(natural order) the turns, transcribed by faster-whisper.")
    tr.add_argument("path", help="folder of recordings")
    tr.add_argument("--out", required=True, help="dataset root folder")
    tr.add_argument("--asr-model", default=None,
                    help="faster-whisper model name or path (default: the embedded tiny.en)")
    tr.add_argument("--speaker-pattern", default=None,
                    help="regex with (?P<speaker>...) applied to file names; default: one speaker")
    tr.add_argument("--limit", type=int, default=None)
    _add_run_args(tr)

    ck = sub.add_parser("check", help="check a dataset's speech against its transcripts with ASR",
                        description="Transcribe every turn, compute word error rate against its "
                                    "transcript (synth.wer normalization), record it in metadata, "
                                    "report the worst turns; exit 1 if any turn is over the threshold.")
    ck.add_argument("dataset")
    ck.add_argument("--asr", action="store_true", required=True, help="run the ASR check")
    ck.add_argument("--asr-model", default=None, help="faster-whisper model (default: embedded tiny.en)")
    ck.add_argument("--threshold", type=float, default=0.3, help="word error rate that fails a turn")
    ck.add_argument("--worst", type=int, default=10, help="how many of the worst turns to list")
    ck.add_argument("--no-write", action="store_true", help="do not record results in metadata.json")

    h = sub.add_parser("health", help="check a server's gRPC health (exit 0 when SERVING)",
                       description="Ask the standard grpc.health.v1 service; for container HEALTHCHECKs.")
    h.add_argument("--server", default="localhost:50051")
    h.add_argument("--service", default="synth.v1.Synth", help="'' for the whole server")
    h.add_argument("--timeout", type=float, default=5.0)
    h.add_argument("--tls", action="store_true", help="connect with TLS")
    h.add_argument("--root-cert", default=None, help="PEM file of the CA to trust (TLS)")

    sv = sub.add_parser("serve", help="run the gRPC synthesis service",
                        description="Serve synth.v1.Synth over gRPC with health checking, "
                                    "reflection and Prometheus metrics. Every option also reads an "
                                    "environment variable (SYNTH_<OPTION>), for containers.")
    env = os.environ.get
    sv.add_argument("--host", default=env("SYNTH_HOST", "[::]"))
    sv.add_argument("--port", type=int, default=int(env("SYNTH_PORT", "50051")))
    sv.add_argument("--out", default=env("SYNTH_OUT", "dataset"), help="dataset root the server writes to")
    _add_engine_args(sv)
    sv.add_argument("--seed", type=int, default=int(env("SYNTH_SEED", "0")))
    sv.add_argument("--gap", default=env("SYNTH_GAP", "normal:0.4,0.2"))
    sv.add_argument("--max-in-flight", type=int, default=int(env("SYNTH_MAX_IN_FLIGHT", "64")),
                    help="Synthesize calls served at once; more get RESOURCE_EXHAUSTED")
    _add_batch_args(sv, "across all streams")
    sv.add_argument("--max-turns", type=int, default=int(env("SYNTH_MAX_TURNS", "200")))
    sv.add_argument("--max-turn-chars", type=int, default=int(env("SYNTH_MAX_TURN_CHARS", "2000")))
    sv.add_argument("--auth-token", default=env("SYNTH_AUTH_TOKEN"),
                    help="require 'authorization: Bearer TOKEN' on every call (default: off)")
    sv.add_argument("--tls-cert", default=env("SYNTH_TLS_CERT"), help="PEM certificate chain (TLS on)")
    sv.add_argument("--tls-key", default=env("SYNTH_TLS_KEY"), help="PEM private key")
    sv.add_argument("--metrics-port", type=int, default=int(env("SYNTH_METRICS_PORT", "9090")),
                    help="Prometheus /metrics port (-1: off)")
    sv.add_argument("--drain-seconds", type=float, default=float(env("SYNTH_DRAIN_SECONDS", "30")),
                    help="on SIGTERM, time given to calls in flight")
    _add_asr_check_args(sv)
    return parser


def _add_sample_args(p: argparse.ArgumentParser, *format_flags: str) -> None:
    g = p.add_argument_group("training samples")
    g.add_argument("--tokenizer", default="meta-llama/Llama-3.1-8B-Instruct",
                   help="a Llama 3 name (embedded, offline), a local tokenizer folder or a hub id")
    g.add_argument(*format_flags, dest="sample_format", default="chat", choices=("chat", "transcribe"),
                   help="chat: target = next turn; transcribe: target = the turn's own words")
    g.add_argument("--pad-multiple", type=int, default=64, help="pad sequences to a multiple of this")
    g.add_argument("--speech-tokens-per-sec", type=float, default=10.0,
                   help="speech positions per second of audio in total_tokens (default 10)")


def _add_batch_args(p: argparse.ArgumentParser, across: str) -> None:
    env = os.environ.get
    p.add_argument("--max-batch", type=int, default=int(env("SYNTH_MAX_BATCH", "16")),
                   help=f"turns (sentence chunks) per engine call {across} (dynamic batching)")
    p.add_argument("--max-wait-ms", type=float, default=float(env("SYNTH_MAX_WAIT_MS", "5")),
                   help="longest wait for a batch to fill")
    p.add_argument("--max-batch-chars", type=int, default=int(env("SYNTH_MAX_BATCH_CHARS", "20000")),
                   help="characters per engine call (bounds GPU memory)")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=2, help="parallel decoding workers (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed for turn gaps")
    p.add_argument("--gap", default="normal:0.4,0.2", help="gap between turns (see generate)")
    p.add_argument("--on-error", default="skip", choices=("skip", "fail"))
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_sample_args(p, "--sample-format")


def _add_asr_check_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("ASR check")
    g.add_argument("--asr-check", action="store_true",
                   help="transcribe each synthesized turn and re-synthesize it if its word error "
                        "rate is over --asr-threshold (results in metadata)")
    g.add_argument("--asr-model", default=None, help="faster-whisper model (default: embedded tiny.en)")
    g.add_argument("--asr-threshold", type=float, default=0.3)
    g.add_argument("--asr-retries", type=int, default=2, help="re-syntheses per failing turn")


def _asr_check(args: argparse.Namespace):
    if not getattr(args, "asr_check", False):
        return None
    from .asr import AsrCheck, Recognizer

    return AsrCheck(Recognizer(args.asr_model), args.asr_threshold, args.asr_retries)


def _sample_builder(args: argparse.Namespace):
    from .samples import SampleConfig, default_sample_builder

    config = SampleConfig(format=args.sample_format, pad_multiple=args.pad_multiple,
                          speech_tokens_per_sec=args.speech_tokens_per_sec)
    return default_sample_builder(args.tokenizer, config)


def _engine(args: argparse.Namespace, noise_scale: float | None = None, noise_w: float | None = None):
    from .engines import load_engine

    return load_engine(args.engine, args.model, args.device, noise_scale, noise_w, half=args.half,
                       speaker_info=args.speaker_info, model_cache=args.model_cache)


def _parse_voice_override(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        speaker, sep, voice = item.partition("=")
        if not sep or not speaker or not voice:
            raise SynthError(f"--voice {item!r}: expected SPEAKER=VOICE")
        out[speaker] = voice
    return out


def cmd_generate(args: argparse.Namespace) -> int:
    from .batcher import BatchingEngine
    from .dialogs import DialogLimits
    from .generate import generate
    from .pipeline import Pipeline, PipelineConfig
    from .sources import open_dialogs
    from .timeline import GapDistribution
    from .writer import DatasetWriter

    limits = DialogLimits(max_turns=args.max_turns, max_turn_chars=args.max_turn_chars)
    config = PipelineConfig(seed=args.seed, gap=GapDistribution.parse(args.gap),
                            voice_override=_parse_voice_override(args.voice))
    dialogs = open_dialogs(args.dialogs, args.format, args.split, args.limit, limits)
    if args.in_flight < 1 or args.max_batch < 1:
        raise SynthError("--in-flight and --max-batch must be at least 1")
    # The batcher bounds every engine call (--max-batch, --max-batch-chars, smaller batches on
    # out-of-memory); with one conversation in flight there is nothing to wait for.
    engine = BatchingEngine(_engine(args, args.noise_scale, args.noise_w), args.max_batch,
                            args.max_wait_ms if args.in_flight > 1 else 0.0, args.max_batch_chars)
    try:
        pipeline = Pipeline(engine, config, _sample_builder(args), _asr_check(args))
        summary = generate(dialogs, pipeline, DatasetWriter(args.out), on_error=args.on_error,
                           resume=args.resume, progress=not args.quiet, total=args.limit,
                           workers=args.in_flight)
    finally:
        engine.close()
    print(summary.format())
    return EXIT_PARTIAL if summary.failed else EXIT_OK


def cmd_voices(args: argparse.Namespace) -> int:

    engine = _engine(args)
    for voice in engine.voices():
        if args.json:
            print(json.dumps(voice.to_dict()))
        else:
            params = " ".join(f"{k}={v}" for k, v in voice.params.items() if v is not None)
            meta = " ".join(f"{k}={v}" for k, v in voice.meta.items())
            print(f"{voice.id:28s} {voice.engine:6s} {voice.model:24s} {params}  {meta}")
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    from .validate import validate_dataset

    report = validate_dataset(args.dataset)
    if args.json:
        print(json.dumps({"ok": report.ok, "errors": report.errors, "warnings": report.warnings,
                          "conversations": report.conversations, "turns": report.turns,
                          "audio_sec": round(report.audio_sec, 3)}, indent=2))
    else:
        print(report.format())
    return EXIT_OK if report.ok else EXIT_ERROR


def cmd_splits(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .curriculum import parse_stages, write_splits

    summaries, too_long = write_splits(args.dataset, parse_stages(args.stages),
                                       Path(args.out) if args.out else None)
    for s in summaries:
        print(f"stage {s.stage:>7}: {s.conversations:6d} conversations {s.hours:8.3f} h  -> {s.path}")
    if too_long:
        print(f"{too_long} conversation(s) exceed the last stage and are in no split")
    return EXIT_OK


def cmd_tokenize(args: argparse.Namespace) -> int:
    from .retokenize import retokenize

    n = retokenize(args.dataset, _sample_builder(args))
    print(f"tokenized {n} conversation(s) with {args.tokenizer} ({args.sample_format})")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .export import export_hf, export_llama_omni

    manifest = Path(args.manifest) if args.manifest else None
    if args.to == "llama-omni":
        n = export_llama_omni(args.dataset, args.output, relative=args.relative, manifest=manifest)
    else:
        n = export_hf(args.dataset, args.output, manifest=manifest)
    print(f"exported {n} sample(s) to {args.output} ({args.to})")
    return EXIT_OK


def cmd_batch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .batch import run_batch
    from .dialogs import DialogLimits
    from .sources import open_dialogs

    limits = DialogLimits(max_turns=args.max_turns, max_turn_chars=args.max_turn_chars)
    dialogs = open_dialogs(args.dialogs, args.format, args.split, args.limit, limits)
    failures = Path(args.failures) if args.failures else None
    summary = run_batch(dialogs, args.server, args.concurrency, Path(args.out) if args.out else None,
                        token=args.token, tls=args.tls, failures_path=failures, timeout=args.timeout,
                        seed=args.seed, progress=not args.quiet)
    print(summary.format(failures))
    return EXIT_PARTIAL if summary.failed else EXIT_OK


def _run_recorded(args: argparse.Namespace, groups, recognizer=None) -> int:
    import itertools

    from .generate import generate
    from .recorded import RecordedProducer
    from .timeline import GapDistribution
    from .writer import DatasetWriter

    producer = RecordedProducer(GapDistribution.parse(args.gap), args.seed, _sample_builder(args), recognizer)
    summary = generate(itertools.islice(groups, args.limit), producer, DatasetWriter(args.out),
                       on_error=args.on_error, resume=args.resume, progress=not args.quiet,
                       total=args.limit, workers=args.workers)
    print(summary.format())
    return EXIT_PARTIAL if summary.failed else EXIT_OK


def cmd_convert(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.corpus == "librispeech":
        from .corpora.librispeech import read_librispeech

        groups = read_librispeech(Path(args.path), args.min_duration, args.truecase)
    else:
        from .corpora.commonvoice import read_commonvoice

        groups = read_commonvoice(Path(args.path), args.split, args.turns, args.speakers)
    return _run_recorded(args, groups)


def cmd_transcribe(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .asr import Recognizer
    from .corpora.folders import read_audio_folders

    groups = read_audio_folders(Path(args.path), args.speaker_pattern)
    return _run_recorded(args, groups, Recognizer(args.asr_model))


def cmd_check(args: argparse.Namespace) -> int:
    from .asr import Recognizer
    from .asr_check import check_dataset

    report = check_dataset(args.dataset, Recognizer(args.asr_model), args.threshold,
                           write=not args.no_write)
    print(report.format(args.worst))
    return EXIT_ERROR if report.failed else EXIT_OK


def cmd_health(args: argparse.Namespace) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    if args.tls or args.root_cert:
        roots = open(args.root_cert, "rb").read() if args.root_cert else None
        channel = grpc.secure_channel(args.server, grpc.ssl_channel_credentials(roots))
    else:
        channel = grpc.insecure_channel(args.server)
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
        except grpc.RpcError as exc:
            print(f"{args.server}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return EXIT_ERROR
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{args.server}: {status}")
    return EXIT_OK if reply.status == health_pb2.HealthCheckResponse.SERVING else EXIT_ERROR


def cmd_serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .dialogs import DialogLimits
    from .pipeline import PipelineConfig
    from synth_server import ServerOptions, ServiceConfig, SynthServer, serve_forever
    from .timeline import GapDistribution

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SynthError("--tls-cert and --tls-key go together")
    engine = _engine(args)
    config = ServiceConfig(
        out=Path(args.out), pipeline=PipelineConfig(seed=args.seed, gap=GapDistribution.parse(args.gap)),
        limits=DialogLimits(max_turns=args.max_turns, max_turn_chars=args.max_turn_chars,
                            max_total_chars=args.max_turns * args.max_turn_chars),
        max_in_flight=args.max_in_flight, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
        max_batch_chars=args.max_batch_chars,
        asr_check=_asr_check(args))
    options = ServerOptions(host=args.host, port=args.port, auth_token=args.auth_token or None,
                            tls_cert=Path(args.tls_cert) if args.tls_cert else None,
                            tls_key=Path(args.tls_key) if args.tls_key else None,
                            metrics_port=None if args.metrics_port < 0 else args.metrics_port,
                            drain_seconds=args.drain_seconds)
    server = SynthServer(engine, config, options).start()
    print(f"synth serve: listening on {args.host}:{server.port}"
          + (f", metrics on :{server.metrics_port}/metrics" if server.metrics_port else ""), flush=True)
    serve_forever(server)
    return EXIT_OK


COMMANDS = {"generate": cmd_generate, "voices": cmd_voices, "validate": cmd_validate,
            "splits": cmd_splits, "tokenize": cmd_tokenize, "export": cmd_export,
            "serve": cmd_serve, "batch": cmd_batch, "health": cmd_health,
            "convert": cmd_convert, "transcribe": cmd_transcribe, "check": cmd_check}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (DialogError, VoiceError, SynthError) as exc:
        print(f"synth {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"synth {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"synth {args.command}: interrupted; run it again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
