"""The Synth gRPC servicer: validates a request, runs the shared Pipeline turn by turn, streams
each turn as soon as it is ready, and writes the folder through the shared DatasetWriter.

Runs on the gRPC server's worker threads (synthesis never runs on gRPC's polling threads).
Cancellation and deadlines are checked between turns and between a turn's sentence chunks; turns
go to a staging folder as they stream, and the folder becomes visible only after the last turn,
so a request that is cancelled or times out leaves no folder and no manifest line."""

from __future__ import annotations

import contextlib
import errno
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from synth.api import casting_distance, pipeline_config
from synth.asr.recognizer import AsrCheck
from synth.dataset.fingerprint import (
    read_options,
    records_samples,
    sample_differences,
    sample_keys,
    sample_options,
)
from synth.dataset.metadata import conversation_metadata
from synth.dataset.mixdown import ConversationAudioConfig
from synth.dataset.records import ManifestEntry
from synth.dataset.writer import AlreadyWritten, Claimed, DatasetWriter
from synth.dialogs.build import DialogLimits
from synth.domain import Dialog, SynthesizedTurn, released
from synth.engines.base import Engine, SynthesisRequest
from synth.engines.batching import BatchConfig, BatchingEngine
from synth.errors import ConfigError, ConflictError, DialogError, SynthError, VoiceError
from synth.ids import conversation_dir
from synth.options import option
from synth.produce.pipeline import Pipeline, PipelineConfig, Stopped
from synth.samples.builder import SampleBuilder, SampleConfig
from synth.samples.tokenizer import DEFAULT_TOKENIZER, Tokenizer, load_tokenizer
from synth_client.v1 import synth_pb2 as pb
from synth_client.v1 import synth_pb2_grpc as pb_grpc

from .convert import FORMATS, RequestError, request_to_dialog, summary_message, turn_messages, voice_message
from .logs import CallLog, log_call
from .metrics import Metrics
from .stored import checked_id, stored_messages, without_root, written_files
from .streams import Slots, StallWatch

DEADLINE_SLACK_SEC = 1.0
MIN_ROOM = 1 << 20  # free bytes needed after a failed write before writing is tried again
_LOST = (FileNotFoundError, IsADirectoryError, NotADirectoryError)  # read back: the file is not there
SERVER_LIMITS = DialogLimits(max_turns=200, max_turn_chars=2000, max_total_chars=50_000, max_speakers=16)


@dataclass
class ServiceConfig:
    """The service's settings. `max_in_flight` bounds the Synthesize calls served at once (their
    turns wait in the batcher's queue), `max_streams` the GetConversation calls, so threads and
    memory stay bounded; `stall_seconds` ends a call whose client has not taken a message for
    that long (a client that stops reading gives its thread and slot back); `samples` is the
    sample configuration (each request picks its format); `asr_check` transcribes every turn and
    synthesizes failing ones again."""

    out: Path
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    limits: DialogLimits = SERVER_LIMITS
    max_in_flight: int = option(
        64, env="MAX_IN_FLIGHT", help="Synthesize calls served at once; more get RESOURCE_EXHAUSTED"
    )
    max_streams: int = option(
        16,
        env="MAX_STREAMS",
        help="GetConversation calls served at once (each streams a stored conversation); more get "
        "RESOURCE_EXHAUSTED",
    )
    stall_seconds: float = option(
        30.0,
        env="STALL_SECONDS",
        help="end a call whose client has not taken a streamed message for this long (a client "
        "that stops reading gives its thread and slot back)",
    )
    batch: BatchConfig = field(default_factory=BatchConfig)
    samples: SampleConfig = field(default_factory=SampleConfig)
    tokenizer: str = DEFAULT_TOKENIZER
    asr_check: AsrCheck | None = None
    # one log line per call, as JSON (for log collectors) or key=value
    log_json: bool = option(False, env="LOG_JSON", help="log one JSON object per line (for log collectors)")
    conversation_audio: ConversationAudioConfig | None = None  # also write conversation.wav

    def __post_init__(self) -> None:
        for name in ("max_in_flight", "max_streams"):
            if getattr(self, name) < 1:
                raise ConfigError(name, "must be at least 1", getattr(self, name))
        if self.stall_seconds <= 0:
            raise ConfigError("stall_seconds", "must be more than 0", self.stall_seconds)


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


def refuse_other_samples(config: ServiceConfig) -> None:
    """Refuse, before anything starts, to serve into a dataset whose dataset.json records other
    sample settings (speech profile, tokenizer, system prompt...): the writer would refuse every
    conversation at commit, after its synthesis."""
    recorded = read_options(Path(config.out))
    if recorded is None or not records_samples(recorded):
        return
    expected = sample_options(recorded)
    mine = sample_options(sample_keys(config.samples, config.tokenizer))
    if expected is None or mine is None:
        return  # a dataset without samples: the per-request format cannot disagree with it
    changed = [d for d in sample_differences(expected, mine) if not d.startswith("format ")]
    if changed:
        raise ConflictError(
            "samples",
            f"{config.out} was made with other sample settings ({'; '.join(changed)}): serve it with "
            "the settings its dataset.json records, or serve into another --out",
        )


class SynthService(pb_grpc.SynthServicer):
    def __init__(self, engine: Engine, config: ServiceConfig, metrics: Metrics | None = None):
        refuse_other_samples(config)
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
        self.calls = Slots(config.max_in_flight, "requests", self.metrics.in_flight.set)
        self.streams = Slots(config.max_streams, "conversation streams", self.metrics.streams_in_flight.set)
        self.stalls = StallWatch(config.stall_seconds, self._stalled)
        self._claimed: set[str] = set()  # ids being synthesized here, claimed when a call starts
        self.draining = threading.Event()
        self.writable = threading.Event()
        self.writable.set()
        self.write_error = ""
        self.largest_written = 0  # bytes of the largest conversation this server wrote
        # called with the error when a write fails (the server reports NOT_SERVING until the
        # volume has room_needed() bytes free and a probe write succeeds)
        self.on_write_failure: Callable[[BaseException], None] = lambda exc: None

    def warm_up(self) -> None:
        """One synthesis before declaring SERVING, so the first caller does not pay for it."""
        self.engine.synthesize([SynthesisRequest("Ready.", self.catalog[0])])

    # -- admission ---------------------------------------------------------------------------
    def _admit(self) -> None:
        if self.draining.is_set():
            raise RequestError(grpc.StatusCode.UNAVAILABLE, "server is draining; retry on another replica")
        self.calls.take()

    @property
    def in_flight(self) -> int:
        return self.calls.used

    def _finish(self, call: CallLog, code: grpc.StatusCode) -> None:
        self.metrics.requests.labels(call.method, code.name).inc()
        if code != grpc.StatusCode.OK:
            self.metrics.errors.labels(code.name).inc()
        log_call(call, code.name, self.config.log_json)

    def _stalled(self, call: CallLog) -> None:
        self.metrics.stalled.labels(call.method).inc()

    def close(self) -> None:
        self.stalls.close()
        self.engine.close()

    # -- RPCs --------------------------------------------------------------------------------
    def ListVoices(
        self, request: pb.ListVoicesRequest, context: grpc.ServicerContext
    ) -> pb.ListVoicesResponse:
        self.metrics.requests.labels("ListVoices", "OK").inc()
        return pb.ListVoicesResponse(voices=[voice_message(v) for v in self.catalog])

    def Synthesize(
        self,
        request: pb.SynthesizeRequest | UndecodableRequest,
        context: grpc.ServicerContext,
    ) -> Iterator[pb.SynthesizeResponse]:
        call = CallLog(time.perf_counter(), "Synthesize")
        return self.stalls.watch(context, call, self._synthesize_call(request, context, call))

    def GetConversation(
        self, request: pb.GetConversationRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.SynthesizeResponse]:
        call = CallLog(time.perf_counter(), "GetConversation")
        return self.stalls.watch(context, call, self._get_call(request, context, call))

    def SynthesizeStream(
        self, requests: Iterator[pb.SynthesizeRequest | UndecodableRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.SynthesizeResponse]:
        """Synthesize as the server registers it (synth_server.app): the request is read here,
        under the stall watch, rather than by gRPC before the handler runs (which waits for it on
        the call's thread until the deadline), so a call that never sends it is ended after
        `stall_seconds`. The same on the wire as a unary request."""
        call = CallLog(time.perf_counter(), "Synthesize")
        return self.stalls.watch(
            context, call, self._after_request(requests, context, call, self._synthesize_call)
        )

    def GetConversationStream(
        self, requests: Iterator[pb.GetConversationRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.SynthesizeResponse]:
        """GetConversation as the server registers it, its request read as SynthesizeStream's."""
        call = CallLog(time.perf_counter(), "GetConversation")
        return self.stalls.watch(context, call, self._after_request(requests, context, call, self._get_call))

    def _after_request(
        self,
        requests: Iterator[Any],
        context: grpc.ServicerContext,
        call: CallLog,
        then: Callable[[Any, grpc.ServicerContext, CallLog], Iterator[pb.SynthesizeResponse]],
    ) -> Iterator[pb.SynthesizeResponse]:
        with self.stalls.awaiting_request(context, call):
            try:
                request = next(requests, None)
            except grpc.RpcError:  # cancelled while it waited (the stall watch, or the client)
                request = None
        if request is None:
            if call.note or not context.is_active():
                self._finish(call, self._stopped(context, call))
                return
            self._finish(call, grpc.StatusCode.INVALID_ARGUMENT)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the call ended without its request message")
        yield from then(request, context, call)

    def _synthesize_call(
        self,
        request: pb.SynthesizeRequest | UndecodableRequest,
        context: grpc.ServicerContext,
        call: CallLog,
    ) -> Iterator[pb.SynthesizeResponse]:
        try:
            self._admit()
        except RequestError as exc:
            self._finish(call, exc.code)
            context.abort(exc.code, exc.message)
        code = grpc.StatusCode.OK
        try:
            yield from self._synthesize(request, context, call)
            if not context.is_active():  # stopped between turns: cancelled or past its deadline
                code = self._stopped(context, call)
        except RequestError as exc:
            code = exc.code
            context.abort(exc.code, exc.message)
        except DialogError as exc:  # found while synthesizing: a turn the voice cannot speak
            code = grpc.StatusCode.INVALID_ARGUMENT
            context.abort(code, f"{exc.field + ': ' if exc.field else ''}{exc.message}")
        except GeneratorExit:  # the client went away, or stopped reading: nothing more is sent
            code = self._stopped(context, call)
            raise
        except Exception as exc:  # a bug or an engine failure: report it, keep serving
            code = grpc.StatusCode.INTERNAL
            context.abort(grpc.StatusCode.INTERNAL, f"synthesis failed: {type(exc).__name__}: {exc}")
        finally:
            self._finish(call, code)
            self.calls.give_back()  # last: a drain that waits for in_flight == 0 sees the call counted

    def _get_call(
        self, request: pb.GetConversationRequest, context: grpc.ServicerContext, call: CallLog
    ) -> Iterator[pb.SynthesizeResponse]:
        code = grpc.StatusCode.OK
        try:
            call.conversation_id = checked_id(request.conversation_id)  # logged only once checked
            self.streams.take()
            try:
                listed = call.conversation_id in self.writer.done_ids()
                yield from stored_messages(self.config.out, call.conversation_id, listed, call)
            finally:
                self.streams.give_back()
            if not context.is_active():
                code = self._stopped(context, call)
        except RequestError as exc:
            code = exc.code
            context.abort(exc.code, exc.message)
        except GeneratorExit:
            code = self._stopped(context, call)
            raise
        except (SynthError, OSError) as exc:  # a folder that is not what was written, or unreadable
            code, message = self._read_error(call.conversation_id, exc)
            context.abort(code, message)
        finally:
            self._finish(call, code)

    def _read_error(self, conversation_id: str, exc: BaseException) -> tuple[grpc.StatusCode, str]:
        """DATA_LOSS for a conversation that is damaged or breaks the path rule (a file named
        outside its folder, a symbolic link, a file missing or changed); UNAVAILABLE when the
        volume cannot be read now (EIO, too many open files)."""
        detail = without_root(str(exc), self.config.out) or type(exc).__name__
        if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
            detail = f"{Path(exc.filename or '').name}: a symbolic link; it is not followed"
        elif isinstance(exc, OSError) and not isinstance(exc, _LOST):
            return grpc.StatusCode.UNAVAILABLE, f"cannot read conversation {conversation_id!r} now: {detail}"
        return (
            grpc.StatusCode.DATA_LOSS,
            f"conversation {conversation_id!r} is damaged on the server, not sent: {detail}",
        )

    @staticmethod
    def _stopped(context: grpc.ServicerContext, call: CallLog) -> grpc.StatusCode:
        return grpc.StatusCode.CANCELLED if call.note else _stopped_code(context)

    def _written(self, conversation_id: str) -> None:
        folder = conversation_dir(self.config.out, conversation_id)
        with contextlib.suppress(OSError):
            size = sum(p.stat().st_size for p in folder.iterdir())
            self.largest_written = max(self.largest_written, size)

    def room_needed(self) -> int:
        """Free bytes the volume must have before writing is tried again after a failure: room
        for twice the largest conversation written so far (while one is written, its staged
        full-band audio and its mix are on disk together), 1 MiB at least; so that a failed
        write, whose clean-up frees what it had written, does not flip health straight back."""
        return max(2 * self.largest_written, MIN_ROOM)

    def _count(self, turn: SynthesizedTurn, call: CallLog) -> None:
        self.metrics.turns.inc()
        self.metrics.audio_seconds.inc(turn.duration_sec)
        self.metrics.synthesis_seconds.inc(turn.synthesis_sec)
        self.metrics.turn_latency.observe(turn.synthesis_sec)
        call.turns += 1
        call.audio_sec += turn.duration_sec

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
                    self._written(meta.conversation_id)
                else:
                    meta = conversation_metadata(conv)
                    entry = ManifestEntry.from_metadata(meta)
        except (AlreadyWritten, Claimed) as exc:  # finished, or being made, by another writer
            raise RequestError(grpc.StatusCode.ALREADY_EXISTS, str(exc)) from None
        except OSError as exc:  # a full or read-only volume (WriteFailed too): nothing of it was kept
            self.write_error = without_root(str(exc), self.config.out)
            self.writable.clear()
            self.on_write_failure(exc)
            raise RequestError(
                grpc.StatusCode.UNAVAILABLE,
                f"cannot write the conversation ({self.write_error}); nothing was kept, retry later "
                "or elsewhere",
            ) from None
        if write:
            yield from written_files(conversation_dir(self.config.out, meta.conversation_id), meta)
        yield summary_message(meta, entry, written=write, samples=conv.samples)
