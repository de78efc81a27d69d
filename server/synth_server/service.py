"""The Synth gRPC servicer: validates a request, runs the shared Pipeline turn by turn, streams
each turn as soon as it is ready, and writes the folder through the shared DatasetWriter.

Runs on the gRPC server's worker threads (synthesis never runs on gRPC's polling threads).
Cancellation and deadlines are checked between turns and between a turn's sentence chunks; turns
go to a staging folder as they stream, and the folder becomes visible only after the last turn,
so a request that is cancelled or times out leaves no folder and no manifest line."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc
from google.protobuf.message import DecodeError

from synth.api import casting_distance, pipeline_config
from synth.asr.recognizer import AsrCheck
from synth.dataset.metadata import conversation_metadata
from synth.dataset.mixdown import ConversationAudioConfig
from synth.dataset.reader import ConversationRef
from synth.dataset.records import SAMPLES_FILE, ConversationMetadata, ManifestEntry
from synth.dataset.writer import AlreadyWritten, DatasetWriter
from synth.dialogs.build import DialogLimits
from synth.domain import Dialog, SynthesizedTurn, released
from synth.engines.base import Engine, SynthesisRequest
from synth.engines.batching import BatchConfig, BatchingEngine
from synth.errors import DialogError, SynthError, VoiceError
from synth.ids import InvalidConversationId, conversation_dir
from synth.produce.pipeline import Pipeline, PipelineConfig, Stopped
from synth.samples.builder import SampleBuilder, SampleConfig
from synth.samples.tokenizer import DEFAULT_TOKENIZER, Tokenizer, load_tokenizer
from synth_client.v1 import synth_pb2 as pb
from synth_client.v1 import synth_pb2_grpc as pb_grpc

from .convert import (
    FORMATS,
    RequestError,
    extra_files,
    file_messages,
    request_to_dialog,
    stored_turn_messages,
    summary_message,
    turn_messages,
    voice_message,
)
from .metrics import Metrics

LOG = logging.getLogger("synth_server")
DEADLINE_SLACK_SEC = 1.0
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
    log_json: bool = False  # one log line per call, as JSON (for log collectors) or key=value
    conversation_audio: ConversationAudioConfig | None = None  # also write conversation.wav


@dataclass
class CallLog:
    """What one call did, for its log line."""

    began: float
    conversation_id: str = ""
    method: str = "Synthesize"
    turns: int = 0
    audio_sec: float = 0.0


@dataclass(frozen=True)
class UndecodableRequest:
    """A request whose bytes are not a valid message (e.g. a string field that is not UTF-8)."""

    message: str


def decode_request(data: bytes) -> pb.SynthesizeRequest | UndecodableRequest:
    """The request deserializer: a bad message becomes INVALID_ARGUMENT instead of INTERNAL."""
    try:
        return pb.SynthesizeRequest.FromString(data)
    except DecodeError as exc:
        return UndecodableRequest(
            f"the request is not a valid synth.v1.SynthesizeRequest (text fields must be UTF-8): {exc}"
        )


def _stopped_code(context: grpc.ServicerContext) -> grpc.StatusCode:
    """Why a call stopped early: its deadline passed, or the client cancelled it. A client whose
    deadline fires cancels the call a little before the server's own copy of that deadline (the
    server starts counting when the request arrives), so a stop within DEADLINE_SLACK_SEC of the
    deadline counts as DEADLINE_EXCEEDED."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= DEADLINE_SLACK_SEC:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


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
        # casting's voice distance, measured once for the server's life when cast_by says so
        self.distance = casting_distance(self.engine, config.pipeline)
        self.writer = DatasetWriter(config.out, config.conversation_audio)
        self.writer.recover()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._claimed: set[str] = set()  # ids being synthesized here, claimed when a call starts
        self.draining = threading.Event()
        self.writable = threading.Event()
        self.writable.set()
        self.write_error = ""
        # called with the error when a write fails (the server reports NOT_SERVING until a probe
        # write succeeds again)
        self.on_write_failure: Callable[[BaseException], None] = lambda exc: None

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
        request: pb.SynthesizeRequest | UndecodableRequest,
        context: grpc.ServicerContext,
    ) -> Iterator[pb.SynthesizeResponse]:
        call = CallLog(time.perf_counter())
        try:
            self._admit()
        except RequestError as exc:
            self._finish("Synthesize", exc.code)
            self._log(call, exc.code)
            context.abort(exc.code, exc.message)
        code = grpc.StatusCode.OK
        try:
            yield from self._synthesize(request, context, call)
            if not context.is_active():  # stopped between turns: cancelled or past its deadline
                code = _stopped_code(context)
        except RequestError as exc:
            code = exc.code
            context.abort(exc.code, exc.message)
        except DialogError as exc:  # found while synthesizing: a turn the voice cannot speak
            code = grpc.StatusCode.INVALID_ARGUMENT
            context.abort(code, f"{exc.field + ': ' if exc.field else ''}{exc.message}")
        except GeneratorExit:  # the client went away: nothing was written
            code = _stopped_code(context)
            raise
        except Exception as exc:  # a bug or an engine failure: report it, keep serving
            code = grpc.StatusCode.INTERNAL
            context.abort(grpc.StatusCode.INTERNAL, f"synthesis failed: {type(exc).__name__}: {exc}")
        finally:
            self._finish("Synthesize", code)
            self._log(call, code)
            self._release()  # last: a drain that waits for in_flight == 0 sees the call counted

    def GetConversation(
        self, request: pb.GetConversationRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.SynthesizeResponse]:
        call = CallLog(time.perf_counter(), request.conversation_id, method="GetConversation")
        code = grpc.StatusCode.OK
        try:
            yield from self._stored(request.conversation_id, call)
        except RequestError as exc:
            code = exc.code
            context.abort(exc.code, exc.message)
        except (OSError, SynthError) as exc:  # a folder that cannot be read back
            code = grpc.StatusCode.INTERNAL
            context.abort(code, f"cannot read conversation {request.conversation_id!r}: {exc}")
        finally:
            self._finish("GetConversation", code)
            self._log(call, code)

    def _stored(self, conversation_id: str, call: CallLog) -> Iterator[pb.SynthesizeResponse]:
        try:
            folder = conversation_dir(self.config.out, conversation_id)
        except InvalidConversationId as exc:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"conversation_id: {exc}") from None
        if conversation_id not in self.writer.done_ids():
            raise RequestError(
                grpc.StatusCode.NOT_FOUND, f"conversation {conversation_id!r} is not in the dataset"
            )
        ref = ConversationRef(conversation_id, folder, ManifestEntry(conversation_id, "", 0, 0.0))
        meta = ref.metadata()
        for turn in ref.turns(meta):
            call.turns += 1
            call.audio_sec += turn.duration_sec
            yield from stored_turn_messages(turn, (folder / turn.audio_file).read_bytes())
        yield from self._extra_files(folder, meta)
        samples = ref.samples() if (folder / SAMPLES_FILE).exists() else None
        yield summary_message(meta, ManifestEntry.from_metadata(meta), written=True, samples=samples)

    @staticmethod
    def _extra_files(folder: Path, meta: ConversationMetadata) -> Iterator[pb.SynthesizeResponse]:
        """Event audio and conversation.wav, read one at a time from the written folder."""
        for name in extra_files(meta):
            yield from file_messages(folder / name)

    def _count(self, turn: SynthesizedTurn, call: CallLog) -> None:
        self.metrics.turns.inc()
        self.metrics.audio_seconds.inc(turn.duration_sec)
        self.metrics.synthesis_seconds.inc(turn.synthesis_sec)
        self.metrics.turn_latency.observe(turn.synthesis_sec)
        call.turns += 1
        call.audio_sec += turn.duration_sec

    def _log(self, call: CallLog, code: grpc.StatusCode) -> None:
        record = {
            "method": "Synthesize",
            "conversation_id": call.conversation_id,
            "code": code.name,
            "turns": call.turns,
            "audio_sec": round(call.audio_sec, 3),
            "latency_sec": round(time.perf_counter() - call.began, 3),
        }
        if self.config.log_json:
            LOG.info(json.dumps(record))
        else:
            LOG.info(" ".join(f"{k}={v}" for k, v in record.items()))

    def _claim(self, conversation_id: str) -> None:
        with self._lock:
            if conversation_id in self._claimed:
                raise RequestError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"conversation_id {conversation_id!r} is being synthesized by another call",
                )
            self._claimed.add(conversation_id)

    def _synthesize(
        self,
        request: pb.SynthesizeRequest | UndecodableRequest,
        context: grpc.ServicerContext,
        call: CallLog,
    ) -> Iterator[pb.SynthesizeResponse]:
        if isinstance(request, UndecodableRequest):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        dialog = request_to_dialog(request, self.config.limits, self.voice_ids)
        call.conversation_id = dialog.conversation_id
        write = not request.stream_only
        if write and not self.writable.is_set():
            raise RequestError(
                grpc.StatusCode.UNAVAILABLE,
                f"the dataset volume cannot be written ({self.write_error}); retry on another replica",
            )
        if not write:
            yield from self._run(request, dialog, context, call, write)
            return
        self._claim(dialog.conversation_id)
        try:
            if dialog.conversation_id in self.writer.done_ids():
                raise RequestError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"conversation_id {dialog.conversation_id!r} is already in the dataset",
                )
            yield from self._run(request, dialog, context, call, write)
        finally:
            with self._lock:
                self._claimed.discard(dialog.conversation_id)

    def _run(
        self,
        request: pb.SynthesizeRequest,
        dialog: Dialog,
        context: grpc.ServicerContext,
        call: CallLog,
        write: bool,
    ) -> Iterator[pb.SynthesizeResponse]:
        fmt = FORMATS.get(request.sample_format)
        if fmt is None:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT, f"sample_format: unknown value {request.sample_format}"
            )
        config = pipeline_config(self.config.pipeline, self.config.samples, self.config.conversation_audio)
        if request.HasField("seed"):
            config = replace(config, seed=request.seed)
        pipeline = Pipeline(self.engine, config, self.builders[fmt], self.config.asr_check, self.distance)
        try:
            casting = pipeline.cast(dialog)
        except VoiceError as exc:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"voices: {exc}") from None

        def stopped() -> bool:  # asked between turns and between a turn's sentence chunks
            return not context.is_active()

        # Each turn goes to the conversation's staging folder as soon as it is streamed (its
        # audio is let go), so a long conversation needs the memory of one turn; a call that
        # stops early leaves the staging folder to be removed, and nothing is listed.
        turns = []
        try:
            with self.writer.staged(dialog.conversation_id) if write else contextlib.nullcontext() as staging:
                try:
                    for turn in pipeline.iter_turns(dialog, casting, stopped):
                        if stopped():
                            return  # cancelled or past its deadline: stop, write nothing
                        self._count(turn, call)
                        yield from turn_messages(turn)
                        turns.append(staging.add_turn(turn) if staging is not None else released(turn))
                except Stopped:
                    return
                conv = pipeline.assemble(dialog, casting, turns)
                if not context.is_active():
                    return
                if staging is not None:
                    meta, entry = staging.commit(conv)
                else:
                    meta = conversation_metadata(conv)
                    entry = ManifestEntry.from_metadata(meta)
        except AlreadyWritten as exc:
            raise RequestError(grpc.StatusCode.ALREADY_EXISTS, str(exc)) from None
        except OSError as exc:  # a full or read-only volume: nothing of it was kept
            self.write_error = str(exc)
            self.writable.clear()
            self.on_write_failure(exc)
            raise RequestError(
                grpc.StatusCode.UNAVAILABLE,
                f"cannot write the conversation ({exc}); nothing was kept, retry later or elsewhere",
            ) from None
        if write:
            yield from self._extra_files(conversation_dir(self.config.out, meta.conversation_id), meta)
        yield summary_message(meta, entry, written=write, samples=conv.samples)
