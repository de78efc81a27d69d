"""The Synth gRPC servicer: validates a request, runs the shared Pipeline turn by turn, streams
each turn as soon as it is ready, and writes the folder through the shared DatasetWriter.

Runs on the gRPC server's worker threads (synthesis never runs on gRPC's polling threads).
Cancellation and deadlines are checked between turns; the folder is written only after the last
turn, so a request that is cancelled or times out leaves no folder and no manifest line."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc

from synth.asr import AsrCheck
from synth.batcher import BatchConfig, BatchingEngine
from synth.dialogs import DialogLimits
from synth.engines.base import Engine, SynthesisRequest
from synth.errors import VoiceError
from synth.metadata import conversation_metadata
from synth.pipeline import Pipeline, PipelineConfig
from synth.records import ManifestEntry
from synth.samples import SampleBuilder, SampleConfig
from synth.tokenizer import DEFAULT_TOKENIZER, Tokenizer, load_tokenizer
from synth.writer import AlreadyWritten, DatasetWriter
from synth_client.v1 import synth_pb2 as pb
from synth_client.v1 import synth_pb2_grpc as pb_grpc

from .convert import FORMATS, RequestError, request_to_dialog, summary_message, turn_messages, voice_message
from .metrics import Metrics

SERVER_LIMITS = DialogLimits(max_turns=200, max_turn_chars=2000, max_total_chars=50_000, max_speakers=16)


@dataclass
class ServiceConfig:
    """The service's settings. `max_in_flight` bounds the calls served at once (their turns wait
    in the batcher's queue), so threads and memory stay bounded; `samples` is the sample
    configuration (each request picks its format); `asr_check` transcribes every turn and
    synthesizes failing ones again."""

    out: Path
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    limits: DialogLimits = SERVER_LIMITS
    max_in_flight: int = 64
    batch: BatchConfig = field(default_factory=BatchConfig)
    samples: SampleConfig = field(default_factory=SampleConfig)
    tokenizer: str = DEFAULT_TOKENIZER
    asr_check: AsrCheck | None = None


class SynthService(pb_grpc.SynthServicer):
    def __init__(self, engine: Engine, config: ServiceConfig, metrics: Metrics | None = None):
        self.config = config
        self.metrics = metrics or Metrics()

        def observe(size: int, depth: int) -> None:
            self.metrics.batch_size.observe(size)
            self.metrics.queue_depth.set(depth)

        # Turns of every stream go through one queue and one engine worker (synth.batcher).
        self.engine = BatchingEngine.configured(engine, config.batch, on_batch=observe)
        tokenizer: Tokenizer = load_tokenizer(config.tokenizer)
        self.builders = {
            fmt: SampleBuilder(tokenizer, replace(config.samples, format=fmt)) for fmt in FORMATS.values()
        }
        self.catalog = engine.voices()
        self.voice_ids = {v.id for v in self.catalog}
        self.writer = DatasetWriter(config.out)
        self.writer.recover()
        self._lock = threading.Lock()
        self._in_flight = 0
        self.draining = threading.Event()

    def warm_up(self) -> None:
        """One synthesis before declaring SERVING, so the first caller does not pay for it."""
        self.engine.synthesize([SynthesisRequest("Ready.", self.catalog[0])])

    # -- admission ---------------------------------------------------------------------------
    def _admit(self) -> None:
        if self.draining.is_set():
            raise RequestError(grpc.StatusCode.UNAVAILABLE, "server is draining; retry on another replica")
        with self._lock:
            if self._in_flight >= self.config.max_in_flight:
                raise RequestError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{self._in_flight} requests in flight (limit "
                    f"{self.config.max_in_flight}); retry with backoff",
                )
            self._in_flight += 1
            self.metrics.in_flight.set(self._in_flight)

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self.metrics.in_flight.set(self._in_flight)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _finish(self, method: str, code: grpc.StatusCode) -> None:
        self.metrics.requests.labels(method, code.name).inc()
        if code != grpc.StatusCode.OK:
            self.metrics.errors.labels(code.name).inc()

    # -- RPCs --------------------------------------------------------------------------------
    def ListVoices(
        self, request: pb.ListVoicesRequest, context: grpc.ServicerContext
    ) -> pb.ListVoicesResponse:
        self._finish("ListVoices", grpc.StatusCode.OK)
        return pb.ListVoicesResponse(voices=[voice_message(v) for v in self.catalog])

    def Synthesize(
        self,
        request: pb.SynthesizeRequest,
        context: grpc.ServicerContext,
    ) -> Iterator[pb.SynthesizeResponse]:
        code = grpc.StatusCode.OK
        try:
            self._admit()
        except RequestError as exc:
            self._finish("Synthesize", exc.code)
            context.abort(exc.code, exc.message)
        try:
            yield from self._synthesize(request, context)
            if not context.is_active():  # stopped between turns: cancelled or past its deadline
                code = grpc.StatusCode.CANCELLED
        except RequestError as exc:
            code = exc.code
            context.abort(exc.code, exc.message)
        except GeneratorExit:  # the client went away: nothing was written
            code = grpc.StatusCode.CANCELLED
            raise
        except Exception as exc:  # a bug or an engine failure: report it, keep serving
            code = grpc.StatusCode.INTERNAL
            context.abort(grpc.StatusCode.INTERNAL, f"synthesis failed: {type(exc).__name__}: {exc}")
        finally:
            self._release()
            self._finish("Synthesize", code)

    def _synthesize(
        self,
        request: pb.SynthesizeRequest,
        context: grpc.ServicerContext,
    ) -> Iterator[pb.SynthesizeResponse]:
        dialog = request_to_dialog(request, self.config.limits, self.voice_ids)
        write = not request.stream_only
        if write and dialog.conversation_id in self.writer.done_ids():
            raise RequestError(
                grpc.StatusCode.ALREADY_EXISTS,
                f"conversation_id {dialog.conversation_id!r} is already in the dataset",
            )
        fmt = FORMATS.get(request.sample_format)
        if fmt is None:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT, f"sample_format: unknown value {request.sample_format}"
            )
        config = self.config.pipeline
        if request.HasField("seed"):
            config = replace(config, seed=request.seed)
        pipeline = Pipeline(self.engine, config, self.builders[fmt], self.config.asr_check)
        try:
            casting = pipeline.cast(dialog)
        except VoiceError as exc:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"voices: {exc}") from None
        turns = []
        for turn in pipeline.iter_turns(dialog, casting):
            if not context.is_active():
                return  # cancelled or past its deadline: stop, write nothing
            self.metrics.turns.inc()
            self.metrics.audio_seconds.inc(turn.duration_sec)
            self.metrics.synthesis_seconds.inc(turn.synthesis_sec)
            self.metrics.turn_latency.observe(turn.synthesis_sec)
            turns.append(turn)
            yield from turn_messages(turn)
        conv = pipeline.assemble(dialog, casting, turns)
        if not context.is_active():
            return
        if write:
            try:
                meta, entry = self.writer.write_with_metadata(conv)
            except AlreadyWritten as exc:
                raise RequestError(grpc.StatusCode.ALREADY_EXISTS, str(exc)) from None
        else:
            meta = conversation_metadata(conv)
            entry = ManifestEntry.from_metadata(meta)
        yield summary_message(meta, entry, written=write, samples=conv.samples)
