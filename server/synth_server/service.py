"""The Synth gRPC servicer: validates a request, runs the shared Pipeline turn by turn, streams
each turn as soon as it is ready, and writes the folder through the shared DatasetWriter.

Runs on the gRPC server's worker threads (synthesis never runs on gRPC's polling threads).
Cancellation and deadlines are checked between turns and between a turn's sentence chunks; turns
go to a staging folder as they stream, and the folder becomes visible only after the last turn,
so a request that is cancelled or times out leaves no folder and no manifest line."""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from synth.api import GenerateOptions, build_pipeline
from synth.dataset.fingerprint import (
    read_options,
    records_samples,
    sample_differences,
    sample_keys,
    sample_options,
)
from synth.dataset.metadata import conversation_metadata
from synth.dataset.records import ManifestEntry
from synth.dataset.writer import DatasetWriter, Staging
from synth.dialogs.build import DialogLimits
from synth.domain import Dialog, SynthesizedTurn, Voice, released
from synth.engines.base import Engine, SynthesisRequest
from synth.engines.batching import BatchingEngine
from synth.errors import (
    AlreadyWritten,
    Claimed,
    ConfigError,
    ConflictError,
    DialogError,
    RequestError,
    Stopped,
    SynthError,
    VoiceError,
)
from synth.ids import conversation_dir
from synth.options import option
from synth.produce.pipeline import Pipeline
from synth.samples.builder import SampleBuilder
from synth_client.v1 import synth_pb2 as pb
from synth_client.v1 import synth_pb2_grpc as pb_grpc

from .admission import Admission
from .logs import CallLog, log_call
from .messages import FORMATS, request_to_dialog, summary_message, turn_messages, voice_message
from .metrics import Metrics
from .stored import checked_id, stored_messages, without_root, written_files
from .streams import StallWatch
from .volume import VolumeHealth

DEADLINE_SLACK_SEC = 1.0
_LOST = (FileNotFoundError, IsADirectoryError, NotADirectoryError)  # read back: the file is not there
SERVER_LIMITS = DialogLimits(max_turns=200, max_turn_chars=2000, max_total_chars=50_000, max_speakers=16)


def generation(**sections: Any) -> GenerateOptions:
    """GenerateOptions for the service: `sections` as GenerateOptions takes them, the request
    limits the server's (SERVER_LIMITS) unless given."""
    return GenerateOptions(**{"limits": SERVER_LIMITS, **sections})


@dataclass
class ServiceConfig:
    """The service's settings. `generation`: how a conversation is made, the library's own
    GenerateOptions as `synth generate` takes them (pipeline, samples, tokenizer, request limits,
    batching, ASR check, conversation audio; the engine is the one the server is given, and the
    options of a generate run, such as resume or shards, do not apply); its samples are the
    sample configuration whose format each request picks. `max_in_flight` bounds the Synthesize
    calls served at once (their turns wait in the batcher's queue), `max_streams` the
    GetConversation calls, so threads and memory stay bounded; `stall_seconds` ends a call whose
    client has not taken a message for that long (a client that stops reading gives its thread
    and slot back)."""

    out: Path
    generation: GenerateOptions = field(default_factory=generation)
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
    # one log line per call, as JSON (for log collectors) or key=value
    log_json: bool = option(False, env="LOG_JSON", help="log one JSON object per line (for log collectors)")

    def __post_init__(self) -> None:
        for name in ("max_in_flight", "max_streams"):
            if getattr(self, name) < 1:
                raise ConfigError(name, "must be at least 1", getattr(self, name))
        if self.stall_seconds <= 0:
            raise ConfigError("stall_seconds", "must be more than 0", self.stall_seconds)
        if self.generation.samples is None:
            raise ConfigError("samples", "the service makes samples (each request picks their format)")

    def pipeline_options(self) -> GenerateOptions:
        """The options the service's pipeline is built with: `max_in_flight` conversations at once."""
        return replace(self.generation, in_flight=self.max_in_flight)


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
    mine = sample_options(sample_keys(config.generation.samples, config.generation.tokenizer))
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
    """The Synth servicer: ListVoices, Synthesize and GetConversation (and their stream forms) over
    one shared pipeline and dataset writer, behind admission control and the volume's health."""

    def __init__(self, engine: Engine, config: ServiceConfig, metrics: Metrics | None = None):
        refuse_other_samples(config)
        self.config = config
        self.metrics = metrics or Metrics()
        # Built as `synth generate` builds it (synth.api.build_pipeline): turns of every stream
        # go through one queue and one engine worker (synth.engines.batching); each call runs a
        # copy with its own seed and sample format (`_pipeline_for`).
        self.pipeline = build_pipeline(config.pipeline_options(), engine)
        self.engine = self.pipeline.engine
        assert isinstance(self.engine, BatchingEngine)
        self.engine.on_batch = self.metrics.batch
        built = self.pipeline.sample_builder
        assert isinstance(built, SampleBuilder)  # the tokenizer is loaded once, for every format
        self.builders = {
            fmt: SampleBuilder(built.tokenizer, replace(built.config, format=fmt)) for fmt in FORMATS.values()
        }
        self.catalog = self.pipeline.catalog
        self.voice_ids = {v.id for v in self.catalog}
        self.writer = DatasetWriter(config.out, config.generation.conversation_audio)
        self.writer.recover()
        self.admission = Admission(config.max_in_flight, config.max_streams, self.metrics)
        self.stalls = StallWatch(config.stall_seconds, self._stalled)
        self.volume = VolumeHealth(config.out, self.writer.probe)
        # called with the error when a write fails (the server reports NOT_SERVING until the
        # volume is writable again: synth_server.volume)
        self.on_write_failure: Callable[[BaseException], None] = lambda exc: None

    def warm_up(self) -> None:
        """One synthesis before declaring SERVING, so the first caller does not pay for it."""
        self.engine.synthesize([SynthesisRequest("Ready.", self.catalog[0])])

    @property
    def in_flight(self) -> int:
        return self.admission.in_flight

    def _finish(self, call: CallLog, code: grpc.StatusCode) -> None:
        self.metrics.finished(call.method, code)
        log_call(call, code.name, self.config.log_json)

    def _stalled(self, call: CallLog) -> None:
        self.metrics.stalled.labels(call.method).inc()

    def close(self) -> None:
        self.stalls.close()
        self.pipeline.close()

    # -- RPCs --------------------------------------------------------------------------------
    def ListVoices(
        self, request: pb.ListVoicesRequest, context: grpc.ServicerContext
    ) -> pb.ListVoicesResponse:
        self.metrics.finished("ListVoices", grpc.StatusCode.OK)
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
            self.admission.admit()
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
            self.admission.calls.give_back()  # last: a drain that waits for in_flight == 0 sees the call counted

    def _get_call(
        self, request: pb.GetConversationRequest, context: grpc.ServicerContext, call: CallLog
    ) -> Iterator[pb.SynthesizeResponse]:
        code = grpc.StatusCode.OK
        try:
            call.conversation_id = checked_id(request.conversation_id)  # logged only once checked
            self.admission.streams.take()
            try:
                listed = call.conversation_id in self.writer.done_ids()
                yield from stored_messages(self.config.out, call.conversation_id, listed, call)
            finally:
                self.admission.streams.give_back()
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

    def _synthesize(
        self,
        request: pb.SynthesizeRequest | UndecodableRequest,
        context: grpc.ServicerContext,
        call: CallLog,
    ) -> Iterator[pb.SynthesizeResponse]:
        if isinstance(request, UndecodableRequest):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, request.message)
        dialog = request_to_dialog(request, self.config.generation.limits, self.voice_ids)
        call.conversation_id = dialog.conversation_id
        write = not request.stream_only
        if write and not self.volume.writable.is_set():
            raise RequestError(
                grpc.StatusCode.UNAVAILABLE,
                f"the dataset volume cannot be written ({self.volume.error}); retry on another replica",
            )
        if not write:
            yield from self._run(request, dialog, context, call, write)
            return
        with self.admission.claim(dialog.conversation_id):
            if dialog.conversation_id in self.writer.done_ids():
                raise RequestError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"conversation_id {dialog.conversation_id!r} is already in the dataset",
                )
            yield from self._run(request, dialog, context, call, write)

    def _pipeline_for(self, request: pb.SynthesizeRequest) -> Pipeline:
        """The service's pipeline with the request's sample format and its seed, when it gives
        one; the engine, casting distance and ASR check are the service's."""
        fmt = FORMATS.get(request.sample_format)
        if fmt is None:
            raise RequestError(
                grpc.StatusCode.INVALID_ARGUMENT, f"sample_format: unknown value {request.sample_format}"
            )
        base = self.pipeline
        config = replace(base.config, seed=request.seed) if request.HasField("seed") else base.config
        return Pipeline(
            base.engine,
            config,
            self.builders[fmt],
            base.asr_check,
            base.distance,
            base.probes.config,
            base.main_speaker,
        )

    def _run(
        self,
        request: pb.SynthesizeRequest,
        dialog: Dialog,
        context: grpc.ServicerContext,
        call: CallLog,
        write: bool,
    ) -> Iterator[pb.SynthesizeResponse]:
        pipeline = self._pipeline_for(request)
        try:
            casting = pipeline.cast(dialog)
        except VoiceError as exc:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"voices: {exc}") from None
        try:
            with self.writer.staged(dialog.conversation_id) if write else contextlib.nullcontext() as staging:
                turns = yield from self._turns(pipeline, dialog, casting, context, call, staging)
                if turns is None:
                    return  # cancelled or past its deadline: stop, write nothing
                conv = pipeline.assemble(dialog, casting, turns)
                if not context.is_active():
                    return
                if staging is not None:
                    meta, entry = staging.commit(conv)
                    self.volume.written(conversation_dir(self.config.out, meta.conversation_id))
                else:
                    meta = conversation_metadata(conv)
                    entry = ManifestEntry.from_metadata(meta)
        except (AlreadyWritten, Claimed) as exc:  # finished, or being made, by another writer
            raise RequestError(grpc.StatusCode.ALREADY_EXISTS, str(exc)) from None
        except OSError as exc:  # a full or read-only volume (WriteFailed too): nothing of it was kept
            self.volume.failed(exc)
            self.on_write_failure(exc)
            raise RequestError(
                grpc.StatusCode.UNAVAILABLE,
                f"cannot write the conversation ({self.volume.error}); nothing was kept, retry later "
                "or elsewhere",
            ) from None
        if write:
            yield from written_files(conversation_dir(self.config.out, meta.conversation_id), meta)
        yield summary_message(meta, entry, written=write, samples=conv.samples)

    def _turns(
        self,
        pipeline: Pipeline,
        dialog: Dialog,
        casting: dict[str, Voice],
        context: grpc.ServicerContext,
        call: CallLog,
        staging: Staging | None,
    ) -> Generator[pb.SynthesizeResponse, None, list[SynthesizedTurn] | None]:
        """Each turn streamed as soon as it is placed, then handed to the conversation's staging
        folder with its audio let go (a long conversation needs the memory of one turn); the
        turns, or None when the call stopped early (the staging folder is then removed, and
        nothing is listed)."""

        def stopped() -> bool:  # asked between turns and between a turn's sentence chunks
            return not context.is_active()

        turns = []
        try:
            for turn in pipeline.iter_turns(dialog, casting, stopped):
                if stopped():
                    return None
                self.metrics.turn(turn.duration_sec, turn.synthesis_sec)
                call.turns += 1
                call.audio_sec += turn.duration_sec
                yield from turn_messages(turn)
                turns.append(staging.add_turn(turn) if staging is not None else released(turn))
        except Stopped:
            return None
        return turns
