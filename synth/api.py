"""The public API: what a Python user (and the CLI, the server and the benchmarks) builds with.

    import synth

    options = synth.GenerateOptions(pipeline=synth.PipelineConfig(seed=7))
    summary = synth.generate("examples/dialogs.jsonl", "dataset/", options)
    assert synth.validate_dataset("dataset/").ok

One options object describes a run; every default lives in its config dataclasses, and the CLI
shows them in `--help`."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .dataset.fingerprint import DATASET_FILE, check_options, plain
from .dataset.mixdown import ConversationAudioConfig
from .dataset.writer import DatasetWriter
from .dialogs.build import DialogLimits
from .dialogs.sessions import SessionConfig
from .dialogs.sources.chat import ChatFields
from .dialogs.sources.coherent import CoherentConfig
from .domain import Dialog, Voice
from .engines import Engine, EngineConfig, PiperConfig, load_engine
from .engines.batching import BatchConfig, BatchingEngine
from .errors import ConfigError, DialogError
from .options import option, recorded_fields, setting
from .produce.gates import GateConfig, Judge
from .produce.pipeline import Pipeline, PipelineConfig
from .produce.probes import ProbeConfig
from .produce.render import TurnRenderer
from .samples.builder import SampleBuilder, SampleConfig
from .samples.tokenizer import DEFAULT_TOKENIZER, load_tokenizer
from .workflows.runner import ON_ERROR, RunSummary, run_producer
from .workflows.sharding import Shard
from .workflows.worker_plan import AUTO, Plan, parse_count
from .workflows.workers import WorkerRole


@dataclass(frozen=True)
class AsrCheckConfig:
    """Transcribe every synthesized turn with faster-whisper and synthesize it again while its
    word error rate is over `threshold` (at most `retries` times, only when the engine's output
    is not deterministic). `model`: a faster-whisper model name or path, None for the embedded
    Whisper tiny.en."""

    model: str | None = option(
        None, flag="--asr-model", help="faster-whisper model (default: embedded tiny.en)"
    )
    threshold: float = option(0.3, flag="--asr-threshold", help="word error rate that fails a turn")
    retries: int = option(2, flag="--asr-retries", help="re-syntheses per failing turn")


@dataclass(frozen=True)
class GenerateOptions:
    """Everything a `generate` run needs besides its dialogs and output folder.

    engine: one engine config, or several: one catalog of all their voices.
    samples: the training-sample format; None writes no samples.jsonl and no token counts.
    in_flight: conversations synthesized at once; their turns share engine batches (a GPU).
    on_error: 'skip' lists a bad dialog in failures.jsonl and goes on; 'fail' stops at it.
    resume: skip conversations already in the manifest (off: refuse a non-empty output); a
        dataset made with other options (dataset.json) is refused unless resume_with_changes.
    shard: make only this shard's share of the source (a stable partition by conversation id).
    sessions: join consecutive dialogs into long sessions (synth.sessions).
    conversation_audio: also write each conversation's two-channel conversation.wav."""

    engine: EngineConfig | tuple[EngineConfig, ...] = field(default_factory=PiperConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    samples: SampleConfig | None = field(default_factory=SampleConfig)
    tokenizer: str = option(
        DEFAULT_TOKENIZER, help="a Llama 3 name (embedded, offline), a local tokenizer folder or a hub id"
    )
    limits: DialogLimits = field(default_factory=DialogLimits)
    batch: BatchConfig = setting(factory=BatchConfig, run=True)
    in_flight: int = option(
        1,
        run=True,
        help="conversations synthesized at once; their turns share engine batches, which keeps a GPU "
        "busy (coqui); 1: one conversation's turns per batch",
    )
    asr_check: AsrCheckConfig | None = None
    on_error: str = option(
        "skip",
        run=True,
        choices=ON_ERROR,
        help="skip: list a bad item in failures.jsonl and go on (exit 3 at the end); fail: stop at the "
        "first one (exit 1)",
    )
    resume: bool = option(
        True,
        run=True,
        negatable=True,
        help="skip conversations already in the manifest and clean up an interrupted run; --no-resume "
        "refuses a non-empty --out",
    )
    progress: bool = setting(False, run=True)
    shard: Shard | None = option(
        None,
        run=True,
        metavar="I/N|auto",
        parse=Shard.parse,
        text=lambda shard: f"{shard.index}/{shard.count}",
        help="make only shard I of N of the source, 0-based (a stable partition by conversation id; N "
        "machines, one shard each, into one shared or N separate datasets), or auto: I and N from the "
        "scheduler (a Slurm array task; a Kubernetes Indexed Job's JOB_COMPLETION_INDEX with "
        "SYNTH_SHARD_COUNT; docs/cluster.md)",
    )
    sessions: SessionConfig | None = None
    conversation_audio: ConversationAudioConfig | None = None
    coherent: CoherentConfig = setting(factory=CoherentConfig, when_set=True)  # added in round 4
    probes: ProbeConfig = setting(factory=ProbeConfig, when_set=True)
    quality: GateConfig = setting(factory=GateConfig, when_set=True)  # scores and gates while generating
    resume_with_changes: bool = option(
        False,
        run=True,
        help="resume a dataset made with other options (dataset.json says which) instead of refusing",
    )
    repair: bool = option(
        False,
        run=True,
        help="make again the finished conversations whose files are not what was written (their "
        "integrity records say so); without it they are reported and the run exits 3",
    )
    workers: int | str = option(
        AUTO,
        run=True,
        metavar="N|auto",
        parse=parse_count("workers"),
        text=str,
        help="worker processes, each with its own engine, making one dataset together (the same "
        "dataset for any N); auto: one per core, as many as the memory holds, one on a GPU or for "
        "sessions made in order (docs/cluster.md); 1: this process alone",
    )
    threads: int | str = option(
        AUTO,
        run=True,
        metavar="T|auto",
        parse=parse_count("threads"),
        text=str,
        help="ONNX Runtime threads per worker; auto: 1 on a CPU, whatever the number of workers, so "
        "that any N makes the same dataset (Piper's audio differs in its last bits between thread "
        "counts); the engine's own choice on a GPU",
    )

    def fingerprint(self) -> dict[str, Any]:
        """What changes the conversations (not how fast they are made), as flat 'a.b' keys:
        recorded in dataset.json, compared on resume. The options of the dataset, as their
        declarations say (synth.options: run options are left out, `when_set` ones recorded only
        when set, so that datasets made before an option existed still resume)."""
        parts: dict[str, Any] = {}
        for f, value in recorded_fields(self):
            if f.name == "engine":  # one engine, or several: a list either way
                parts[f.name] = [plain(e, True) for e in (value if isinstance(value, tuple) else (value,))]
            else:
                parts[f.name] = plain(value, True)
        return _flat(parts)

    def __post_init__(self) -> None:
        if self.in_flight < 1:
            raise ConfigError("in_flight", "must be at least 1", self.in_flight)
        if self.on_error not in ON_ERROR:
            raise ConfigError("on_error", f"choose {' or '.join(ON_ERROR)}", self.on_error)
        parse_count("workers")(self.workers)  # 1 or more, or auto: ConfigError naming the option
        parse_count("threads")(self.threads)


def sample_builder(config: SampleConfig | None = None, tokenizer: str = DEFAULT_TOKENIZER) -> SampleBuilder:
    """The training-sample builder for a format and a tokenizer (a Llama 3 name is embedded)."""
    return SampleBuilder(load_tokenizer(tokenizer), config or SampleConfig())


def asr_checker(config: AsrCheckConfig) -> Any:
    """The ASR check of `config`: a synth.asr.recognizer.AsrCheck over faster-whisper (imported
    here: it is an optional dependency)."""
    from .asr.recognizer import AsrCheck, Recognizer

    return AsrCheck(Recognizer(config.model), config.threshold, config.retries)


def pipeline_config(
    pipeline: PipelineConfig,
    samples: SampleConfig | None,
    conversation_audio: ConversationAudioConfig | None = None,
) -> PipelineConfig:
    """The pipeline config as the rest of the options need it: the speech profile's turn limit
    (LLaMA-Omni: 30 s, Whisper's window) unless the pipeline sets its own, and the full-band
    rate the conversation audio is made at."""
    limit = samples.profile.max_turn_sec if samples is not None else None
    if limit is not None and pipeline.max_turn_sec is None:
        pipeline = replace(pipeline, max_turn_sec=limit)
    if conversation_audio is not None and pipeline.fullband_rate is None:
        pipeline = replace(pipeline, fullband_rate=conversation_audio.fullband_rate)
    return pipeline


def casting_distance(
    engine: Engine, config: PipelineConfig, progress: Callable[[int, int], None] | None = None
) -> Callable[[Voice, Voice], float]:
    """The voice distance casting uses: the engine's own, or (cast_by 'measured') distances
    between speaker-encoder embeddings of every voice, read from the cache or measured once by
    having each voice speak the reference sentences (synth.voices.encoder)."""
    if config.cast_by != "measured":
        return engine.voice_distance
    from .engines.piper_voices import default_cache
    from .voices.encoder import MeasuredDistance, voice_embeddings

    cache = Path(config.voice_cache).expanduser() if config.voice_cache else default_cache()
    renderer = TurnRenderer(engine, config.max_chunk_chars, config.sample_rate)
    embeddings = voice_embeddings(engine, cache, renderer.render, progress=progress)
    return MeasuredDistance(embeddings, engine.voice_distance)


def quality_judge(config: GateConfig, engine: Engine, pipeline: PipelineConfig, checker: Any = None) -> Judge:
    """The scorers and gates of `config` (synth.produce.gates), their models loaded once; the ASR
    check's recognizer shared. The speaker scorer's references are measured (or read from the
    model cache) for each voice the first time a turn needs it."""
    from .quality import QualityConfig, build_scorers

    names = config.scorers
    scorers = build_scorers(
        QualityConfig(scorers=tuple(n for n in names if n != "speaker")),
        recognizer=checker.recognizer if checker is not None else None,
    )
    if "speaker" in names:
        scorers.insert(list(names).index("speaker"), _SpeakerReferences(engine, pipeline))
    return Judge(config, scorers)


class _SpeakerReferences:
    """The speaker scorer with the reference embedding of each voice measured when a turn first
    needs it (synth.voices.references), not the whole catalog's up front."""

    name = "speaker"

    def __init__(self, engine: Engine, pipeline: PipelineConfig):
        import threading

        from .engines.piper_voices import default_cache
        from .quality.speaker import SpeakerScorer

        self.engine = engine
        self.cache = Path(pipeline.voice_cache).expanduser() if pipeline.voice_cache else default_cache()
        # at 16 kHz, what the encoder hears
        self.render = TurnRenderer(engine, pipeline.max_chunk_chars).render
        self.scorer = SpeakerScorer({})
        self.version = self.scorer.version
        self._lock = threading.Lock()

    def score(self, batch: Any) -> Any:
        from .voices.references import reference_embeddings

        wanted = {v for t in batch for v in (t.voice, *t.other_voices) if v}
        with self._lock:
            missing = sorted(wanted - set(self.scorer.references))
            if missing:
                found = reference_embeddings(
                    self.engine, missing, self.render, self.cache, self.scorer.encoder
                )
                self.scorer.references.update(found)
        return self.scorer.score(batch)


def build_pipeline(options: GenerateOptions = GenerateOptions(), engine: Engine | None = None) -> Pipeline:
    """A Pipeline over a batching engine (loaded from `options.engine` unless given); close it
    (or use it in a `with` block) to stop the batcher's worker."""
    base = engine if engine is not None else load_engine(options.engine)
    # With one conversation in flight there is nothing to wait for in the batcher.
    batching = BatchingEngine.configured(base, options.batch, wait=options.in_flight > 1)
    try:
        builder = sample_builder(options.samples, options.tokenizer) if options.samples else None
        checker = asr_checker(options.asr_check) if options.asr_check else None
        config = pipeline_config(options.pipeline, options.samples, options.conversation_audio)
        main = options.conversation_audio.main_speaker if options.conversation_audio else None
        distance = casting_distance(batching, config)
        judge = quality_judge(options.quality, batching, config, checker) if options.quality.enabled else None
        return Pipeline(batching, config, builder, checker, distance, options.probes, main, judge)
    except BaseException:
        batching.close()
        raise


def generate(
    dialogs: str | Path | Iterable[Dialog | DialogError],
    out: str | Path,
    options: GenerateOptions = GenerateOptions(),
    engine: Engine | None = None,
    *,
    split: str | None = None,
    fmt: str = "auto",
    max_dialogs: int | None = None,
    chat: ChatFields | None = None,
    limit: int | None = None,
) -> RunSummary:
    """Synthesize dialogs into the dataset folder `out` (resumable). `dialogs` is a source as
    `synth generate --dialogs` takes it (a path, 'dailydialog', 'hf:<id>') or Dialogs already
    built (synth.sources, synth.dialogs.build.build_dialog); `max_dialogs`: the first that many
    records of the source (`--limit`; not `options.limits`, which bound each dialog's size).
    With `options.workers` above 1 (or auto choosing more), worker processes make the dataset
    together (synth.workflows.workers; Dialogs given as objects are sent to each). `limit` is the
    old name of `max_dialogs`."""
    if limit is not None:
        import warnings

        warnings.warn("generate(limit=) is now generate(max_dialogs=)", DeprecationWarning, stacklevel=2)
        max_dialogs = limit if max_dialogs is None else max_dialogs
    limit = max_dialogs
    plan, dialogs, size = _worker_plan(dialogs, options, engine, fmt, split, limit, chat)
    if plan.workers > 1:
        return _generate_in_workers(
            dialogs, out, options, plan, size, split=split, fmt=fmt, limit=limit, chat=chat
        )
    from .engines.onnx_session import intra_op_threads

    with intra_op_threads(plan.threads):
        return _generate_here(
            dialogs, out, options, engine, split=split, fmt=fmt, limit=limit, chat=chat, size=size
        )


def _worker_plan(
    dialogs: str | Path | Iterable[Dialog | DialogError],
    options: GenerateOptions,
    engine: Engine | None,
    fmt: str,
    split: str | None,
    limit: int | None,
    chat: ChatFields | None,
) -> tuple[Plan, str | Path | Iterable[Dialog | DialogError], int | None]:
    """How many worker processes and threads (synth.workflows.workers.plan_workers), the
    dialogs still to read (a source given as objects is read into a list, to be sent to each) and
    how many records the source holds when that was counted (None: not counted)."""
    from .workflows import worker_plan as w

    engines = options.engine if isinstance(options.engine, tuple) else (options.engine,)
    if options.workers == 1:
        gpu = engine is not None or w.uses_gpu(engines)  # an engine object: its own threads
        return (
            w.Plan(1, int(options.threads) if options.threads != AUTO else None if gpu else 1),
            dialogs,
            None,
        )
    one_at_a_time = ""
    if engine is not None:
        one_at_a_time = "an engine object is given: it lives in this process (give its config for workers)"
    elif options.sessions is not None:
        from .dialogs.sources import open_dialogs

        source = dialogs
        if isinstance(source, (str, Path)):
            source = open_dialogs(str(source), fmt, split, limit, options.limits, chat, options.coherent)
        first, rest = _peek(source)
        if not isinstance(dialogs, (str, Path)):
            dialogs = rest
        if not (isinstance(first, Dialog) and first.segments):
            one_at_a_time = "sessions are made one after another (each starts where the one before ended)"
    if one_at_a_time and options.workers != AUTO:
        raise ConfigError("workers", f"must be 1 here: {one_at_a_time}", options.workers)
    if not one_at_a_time and options.workers == AUTO and options.on_error == "fail":
        # workers make dialogs in parallel: the ones after the first bad one may be made too
        one_at_a_time = "--on-error fail stops at the first bad dialog, in the source's order"
    if one_at_a_time:  # one worker, this process: a source given as objects stays a stream
        threads = int(options.threads) if options.threads != AUTO else None if engine is not None else 1
        return w.Plan(1, threads, one_at_a_time), dialogs, None
    if not isinstance(dialogs, (str, Path)):
        dialogs = list(dialogs)  # sent to each worker
    items = len(dialogs) if isinstance(dialogs, list) else None
    if items is None and options.workers == AUTO and options.shard is None:
        items = _source_size(str(dialogs), fmt, limit)
    auto = options.workers == AUTO
    plan = w.plan_workers(
        options.workers,
        options.threads,
        cores=w.available_cores(),
        memory=w.available_memory(),
        per_worker=w.worker_memory(engines, options.asr_check is not None),
        gpu=not one_at_a_time and w.uses_gpu(engines),
        one_at_a_time=one_at_a_time,
        items=items,
    )
    if auto:
        import logging

        logging.getLogger(__name__).info("workers: %s", plan.describe())
    return plan, dialogs, items


def _generate_in_workers(
    dialogs: str | Path | Iterable[Dialog | DialogError],
    out: str | Path,
    options: GenerateOptions,
    plan: Plan,
    size: int | None,
    **source: Any,
) -> RunSummary:
    """The run in `plan.workers` processes: the options checked and recorded here once, then each
    worker runs `_generate_worker` on the same source into the same dataset."""
    from .workflows.workers import run_workers

    given = str(dialogs) if isinstance(dialogs, (str, Path)) else list(dialogs)
    total = size if size is not None else source.get("limit")
    if isinstance(given, list):
        total = len(given)
    elif size is None and options.progress and options.shard is None:
        total = _source_size(given, source["fmt"], source.get("limit"))
    writer = DatasetWriter(out, options.conversation_audio)
    try:
        if (writer.root / DATASET_FILE).exists():  # made with other options: refused before any worker
            with writer.locked():
                check_options(writer.root, options.fingerprint(), options.resume_with_changes)
        # recorded by the workers, once their pipeline is built: options that cannot make a
        # pipeline (an unknown voice, a bad model) are never recorded
        target = functools.partial(_generate_worker, dialogs=given, out=str(out), options=options, **source)
        return run_workers(
            target,
            writer,
            plan,
            resume=options.resume,
            repair=options.repair,
            progress=options.progress,
            total=total,
            shard=options.shard,
        )
    finally:
        writer.close()


def _generate_worker(
    role: WorkerRole,
    dialogs: str | list[Dialog | DialogError],
    out: str,
    options: GenerateOptions,
    split: str | None,
    fmt: str,
    limit: int | None,
    chat: ChatFields | None,
) -> RunSummary:
    """One worker process of a run with workers: the same source into the same dataset as the
    others (the writer's claims share the conversations out), the parent having recovered,
    repaired and checked it; the leader (`role`) meets the bad records, the others skip them."""
    from .dialogs.sources import open_dialogs
    from .produce.sessions import CoherentSessionProducer

    options = replace(options, workers=1, progress=False, resume=True, repair=False)
    items: Iterable[Dialog | DialogError] = (
        open_dialogs(dialogs, fmt, split, limit, options.limits, chat, options.coherent)
        if isinstance(dialogs, str)
        else dialogs
    )
    dataset = DatasetWriter(out, options.conversation_audio)
    writer = role.writer(dataset)
    with build_pipeline(options) as pipeline:  # the options are valid: record or compare them
        with dataset.locked():
            check_options(dataset.root, options.fingerprint(), options.resume_with_changes)
        run = functools.partial(
            run_producer, writer=writer, on_error=options.on_error, workers=options.in_flight
        )
        if options.sessions is None:
            return run(role.items(items), pipeline, shard=options.shard)
        if options.shard is not None:  # coherent conversations (plain sessions run in one process)
            items = _owned(items, options.shard)
        pieces = CoherentSessionProducer(pipeline, options.sessions)  # shard owned by dialog, above
        return run(replace(role, shard=None).items(pieces.items(items)), pieces)


def _generate_here(
    dialogs: str | Path | Iterable[Dialog | DialogError],
    out: str | Path,
    options: GenerateOptions = GenerateOptions(),
    engine: Engine | None = None,
    *,
    split: str | None = None,
    fmt: str = "auto",
    limit: int | None = None,
    chat: ChatFields | None = None,
    size: int | None = None,
) -> RunSummary:
    """`generate` in this process (one worker); `size`: the source's records, when counted."""
    total = size if size is not None else limit
    if isinstance(dialogs, (str, Path)):
        from .dialogs.sources import open_dialogs

        if size is None and options.progress and options.shard is None:
            total = _source_size(str(dialogs), fmt, limit)
        dialogs = open_dialogs(str(dialogs), fmt, split, limit, options.limits, chat, options.coherent)
    writer = DatasetWriter(out, options.conversation_audio)
    with build_pipeline(options, engine) as pipeline:  # the options are valid: record or compare them
        with writer.locked():
            check_options(writer.root, options.fingerprint(), options.resume_with_changes)
        run = functools.partial(
            run_producer,
            writer=writer,
            on_error=options.on_error,
            resume=options.resume,
            progress=options.progress,
            repair=options.repair,
        )
        if options.sessions is None:
            return run(dialogs, pipeline, total=total, workers=options.in_flight, shard=options.shard)
        from .produce.sessions import CoherentSessionProducer, SessionProducer

        # Sessions are made from the shard's own dialogs, in source order, one after the other;
        # a resumed run starts after the turns its finished sessions hold.
        if options.shard is not None:
            dialogs = _owned(dialogs, options.shard)
        first, dialogs = _peek(dialogs)
        if isinstance(first, Dialog) and first.segments:  # coherent conversations: cut, never joined
            pieces = CoherentSessionProducer(pipeline, options.sessions)
            return run(pieces.items(dialogs), pieces, workers=options.in_flight)
        producer = SessionProducer(pipeline, options.sessions, options.limits)
        return run(producer.items(dialogs, lambda: consumed_turns(writer)), producer, sequential=True)


def _source_size(source: str, fmt: str, limit: int | None) -> int | None:
    """How many records a source holds, at most `limit` (None: it cannot tell without reading
    it whole, e.g. from the hub): counted once per run, for the plan and the progress bar."""
    from .dialogs.sources import count_records

    counted = count_records(source, fmt)
    return counted if limit is None or counted is None else min(counted, limit)


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(_flat(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _peek(
    items: Iterable[Dialog | DialogError],
) -> tuple[Dialog | DialogError | None, Iterator[Dialog | DialogError]]:
    """The first item that is a Dialog (None: none), and all the items still to iterate."""
    it = iter(items)
    seen: list[Dialog | DialogError] = []
    for item in it:
        seen.append(item)
        if isinstance(item, Dialog):
            return item, itertools.chain(seen, it)
    return None, iter(seen)


def _owned(items: Iterable[Dialog | DialogError], shard: Shard) -> Iterator[Dialog | DialogError]:
    for item in items:
        if shard.owns(item.conversation_id or getattr(item, "where", "")):
            yield item


def consumed_turns(writer: DatasetWriter) -> dict[str, int]:
    """dialog id -> how many of its turns the dataset's finished sessions hold."""
    from .dataset.reader import open_dataset
    from .dialogs.sessions import consumed_turns as from_segments

    if not writer.done_ids():
        return {}
    return from_segments(ref.metadata().extra.get("segments", []) for ref in open_dataset(writer.root))
