"""The resumable runner: a producer (the TTS pipeline, sessions, or a corpus converter) over a
source into a dataset folder: resume, duplicate ids, `--on-error`, shards, progress and parallel
workers; each conversation is streamed turn by turn into its staging folder
(synth.dataset.writer.Staging) and committed whole."""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import Any, Protocol, TextIO

from ..dataset.records import ManifestEntry
from ..dataset.writer import AlreadyWritten, Claimed, DatasetWriter
from ..domain import Conversation, Skipped, Source, SynthesizedTurn
from ..errors import Abandoned, ConfigError, ConflictError, DialogError, SynthError, VoiceError
from .outcome import FAILURES, FailureLog, Progress, RunSummary
from .sharding import Shard

__all__ = ["FAILURES", "ON_ERROR", "Item", "Producer", "RunSummary", "run_producer"]

ON_ERROR = ("skip", "fail")


class Item(Protocol):
    """What a run iterates over: a Dialog, or any record a producer turns into a Conversation
    (a group of recorded utterances, a session to make), with a conversation id and a source for
    messages."""

    @property
    def conversation_id(self) -> str: ...

    @property
    def source(self) -> Source: ...


class Producer(Protocol):
    """Makes one item's conversation, handing each turn to `sink` (the writer's staging, which
    writes it and lets its audio go) as soon as it is made: synth.produce's Pipeline,
    SessionProducer and RecordedProducer."""

    def produce(
        self, item: Any, sink: Callable[[SynthesizedTurn], SynthesizedTurn] | None = None
    ) -> Conversation: ...


def run_producer(
    items: Iterable[Item | DialogError | Skipped],
    producer: Producer,
    writer: DatasetWriter,
    on_error: str = "skip",
    resume: bool = True,
    progress: bool = False,
    total: int | None = None,
    workers: int = 1,
    log: TextIO = sys.stderr,
    shard: Shard | None = None,
    sequential: bool = False,
    repair: bool = False,
) -> RunSummary:
    """Produce and write every item not yet in the dataset; `workers` run the producer in parallel
    threads (converters, or conversations in flight whose turns share engine batches). WAVs are
    written on the writer's I/O thread, overlapping production. With on_error='fail' the first
    bad item raises (after the conversations already finished are committed); with 'skip' it is
    logged to `<out>/failures.jsonl` and the run goes on. With `shard`, only the items whose id
    the shard owns are made. `sequential`: each item is taken from `items` only after the one
    before is written (sessions, whose start depends on where the previous one ended); an item's
    `rejected` DialogErrors (dialogs left out of a session) are reported as failures.

    Several runs may share one folder: a conversation another live run is making is left to it,
    one it finished first is skipped. Finished conversations whose files are not what was written
    (their integrity records' sizes) are reported as damaged (exit 3); `repair` takes them out so
    that this run makes them again."""
    if on_error not in ON_ERROR:
        raise ConfigError("on_error", f"choose {' or '.join(ON_ERROR)}", on_error)
    if workers < 1:
        raise ConfigError("workers", "must be at least 1", workers)
    summary = RunSummary()
    began = time.perf_counter()
    summary.recovery = writer.recover()
    damaged = writer.damaged()
    if damaged and repair:
        writer.remove(set(damaged))
        summary.repaired = sorted(damaged)
    elif damaged:
        summary.damaged = sorted(damaged)
    done = writer.done_ids()
    if done and not resume:
        raise ConflictError(
            "resume",
            f"off, but {writer.root} already holds {len(done)} "
            "conversation(s): resume it, or write elsewhere",
        )
    seen: dict[str, str] = {}
    bar = Progress(progress, total, log)
    failures = FailureLog(summary, writer.root / FAILURES, log)
    stop: list[BaseException] = []
    bar.start()

    def fail(err: dict[str, Any], exc: BaseException | None = None) -> None:
        failures.record(err)
        bar.update(summary)
        if on_error == "fail" and exc is not None and not stop:
            stop.append(exc)

    def error_dict(item: Any, exc: BaseException, field: str = "") -> dict[str, Any]:
        if isinstance(exc, DialogError):
            return exc.to_dict()
        return {
            "where": item.source.describe(),
            "field": field,
            "conversation_id": item.conversation_id,
            "error": str(exc),
        }

    # Set at an interrupt: no new conversation starts; with Ctrl-C (`abandon`) the ones in
    # progress stop at their next turn, their staging folders removed (SIGTERM finishes them).
    interrupted = threading.Event()
    abandon = threading.Event()

    def written(fut: Future[ManifestEntry], item: Any) -> None:
        try:
            entry = fut.result()
        except CancelledError:  # queued, never started: the interrupt came first
            return
        except Abandoned:  # in progress at Ctrl-C: left unfinished, nothing of it kept
            summary.abandoned += 1
            return
        except AlreadyWritten:  # another run on this folder finished it first
            summary.skipped_existing += 1
            return
        except Claimed:  # another run on this folder is making it now
            summary.claimed_elsewhere += 1
            return
        except (SynthError, OSError) as exc:  # bad input, disk errors
            fail(error_dict(item, exc, "voices" if isinstance(exc, VoiceError) else ""), exc)
            return
        summary.generated += 1
        summary.audio_sec += float(entry.speech_duration_sec or 0.0)
        if interrupted.is_set():
            summary.finished_after_stop += 1
        bar.update(summary)

    def task(item: Any) -> ManifestEntry:
        try:
            with writer.staged(item.conversation_id) as staging:

                def sink(turn: Any) -> Any:
                    if abandon.is_set():
                        raise Abandoned(f"{item.conversation_id}: interrupted before it was finished")
                    return staging.add_turn(turn)

                conv = producer.produce(item, sink)
                summary.account(conv.extra, conv.conversation_id)
                return staging.commit(conv)[1]
        finally:
            for rejected in getattr(item, "rejected", ()):  # dialogs left out of a session
                fail(rejected.to_dict(), rejected)

    producing: deque[tuple[Future[ManifestEntry], Any]] = deque()

    def drain(limit: int) -> None:
        """Account for finished conversations, oldest first, until at most `limit` are pending
        (one interrupted while it waits stays pending, to be accounted for after)."""
        while len(producing) > limit:
            written(*producing[0])
            producing.popleft()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="synth-produce") as work_pool:
        try:
            for item in items:
                if stop:
                    break
                # a bad record without an id belongs to the shard of its location
                if shard is not None and not shard.owns(item.conversation_id or getattr(item, "where", "")):
                    summary.other_shards += 1
                    continue
                if isinstance(item, DialogError):
                    fail(item.to_dict(), item)
                    continue
                if isinstance(item, Skipped):  # left out by a rule the user set, not a failure
                    summary.skipped_by_rule.append(f"{item.where}: {item.reason}")
                    continue
                if item.conversation_id in done or writer.is_done(item.conversation_id):
                    summary.skipped_existing += 1
                    continue
                first = seen.setdefault(item.conversation_id, item.source.describe())
                if first != item.source.describe():
                    err = DialogError(
                        f"duplicate conversation_id {item.conversation_id!r} (first at {first})",
                        item.source.describe(),
                        "conversation_id",
                        item.conversation_id,
                    )
                    fail(err.to_dict(), err)
                    continue
                drain(2 * workers)  # bound memory: a few conversations in flight
                producing.append((work_pool.submit(task, item), item))
                if sequential:  # the next item is known only once this one is made (sessions)
                    drain(0)
            drain(0)
        except KeyboardInterrupt as stop_now:  # Ctrl-C, or SIGTERM (synth.cli's Terminated)
            interrupted.set()
            if not getattr(stop_now, "finish_in_progress", False):
                abandon.set()
            for fut, _ in producing:
                fut.cancel()  # queued ones never start
            stop_now.summary = summary  # type: ignore[attr-defined]  # what was kept, for the message
            raise
        finally:
            try:
                drain(0)  # after an interrupt or an error: what is still in progress
            finally:
                bar.close()
    summary.wall_sec = time.perf_counter() - began
    if stop:
        stop[0].reported = True  # type: ignore[attr-defined]  # its line is printed already
        raise stop[0]
    return summary
