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
from dataclasses import dataclass
from typing import Any, Protocol

from ..dataset.records import ManifestEntry
from ..dataset.writer import DatasetWriter
from ..domain import Conversation, Skipped, Source, SynthesizedTurn
from ..errors import (
    Abandoned,
    AlreadyWritten,
    Claimed,
    ConfigError,
    ConflictError,
    DialogError,
    SynthError,
    VoiceError,
)
from .outcome import FAILURES, FailureLog, Progress, RunSummary
from .sharding import Shard

__all__ = ["FAILURES", "ON_ERROR", "Item", "Producer", "Run", "RunSettings", "RunSummary", "run_producer"]

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


@dataclass(frozen=True)
class RunSettings:
    """How a run goes, never what its conversations are (nothing here is in the dataset's
    fingerprint).

    on_error: 'skip' lists a bad item in failures.jsonl and goes on; 'fail' raises the first one
        (after the conversations already finished are committed).
    resume: skip what the manifest holds (off: refuse a non-empty dataset).
    progress: a progress bar on stderr, of `total` items when known.
    workers: producer threads (converters, or conversations in flight whose turns share engine
        batches).
    shard: make only the items whose id this shard owns.
    sequential: take each item from the source only after the one before is written (sessions,
        whose start depends on where the previous one ended).
    repair: take out the finished conversations whose files are not what was written, so that
        this run makes them again (without it they are reported, exit 3)."""

    on_error: str = "skip"
    resume: bool = True
    progress: bool = False
    total: int | None = None
    workers: int = 1
    shard: Shard | None = None
    sequential: bool = False
    repair: bool = False

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR:
            raise ConfigError("on_error", f"choose {' or '.join(ON_ERROR)}", self.on_error)
        if self.workers < 1:
            raise ConfigError("workers", "must be at least 1", self.workers)


class Run:
    """One run of a producer over a source into a dataset: every item not yet in it is produced
    and written; WAVs are written on the writer's I/O thread, overlapping production.

    Several runs may share one folder: a conversation another live run is making is left to it,
    one it finished first is skipped. An item's `rejected` DialogErrors (dialogs left out of a
    session) are reported as failures. An interrupt (KeyboardInterrupt; SIGTERM is synth.cli's
    Terminated) starts nothing new: with Ctrl-C the conversations in progress stop at their next
    turn (nothing of them kept), with SIGTERM they are finished; the interrupt carries the
    summary of what was kept."""

    def __init__(self, producer: Producer, writer: DatasetWriter, settings: RunSettings = RunSettings()):
        self.producer, self.writer, self.settings = producer, writer, settings
        self.summary = RunSummary()
        self.bar = Progress(settings.progress, settings.total, sys.stderr)
        self.failures = FailureLog(self.summary, writer.root / FAILURES)
        self._stop: list[BaseException] = []  # the first error, with on_error 'fail'
        self._seen: dict[str, str] = {}  # conversation id -> where it was first met
        self._done: set[str] = set()
        self._interrupted = threading.Event()  # no new conversation starts
        self._abandon = threading.Event()  # the ones in progress stop at their next turn
        self._producing: deque[tuple[Future[ManifestEntry], Any]] = deque()

    def __call__(self, items: Iterable[Item | DialogError | Skipped]) -> RunSummary:
        began = time.perf_counter()
        self._prepare()
        self.bar.start()
        workers = self.settings.workers
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="synth-produce") as pool:
            try:
                for item in items:
                    if self._stop:
                        break
                    if not self._admit(item):
                        continue
                    self._drain(2 * workers)  # bound memory: a few conversations in flight
                    self._producing.append((pool.submit(self._make, item), item))
                    if self.settings.sequential:  # the next item is known only once this one is made
                        self._drain(0)
                self._drain(0)
            except KeyboardInterrupt as stop_now:  # Ctrl-C, or SIGTERM (synth.cli's Terminated)
                self._interrupt(stop_now)
                raise
            finally:
                try:
                    self._drain(0)  # after an interrupt or an error: what is still in progress
                finally:
                    self.bar.close()
        self.summary.wall_sec = time.perf_counter() - began
        if self._stop:
            self._stop[0].reported = True  # type: ignore[attr-defined]  # its line is logged already
            raise self._stop[0]
        return self.summary

    def _prepare(self) -> None:
        """Recover an interrupted run, find damaged conversations (repair takes them out), and
        refuse a non-empty dataset when resume is off."""
        writer, summary = self.writer, self.summary
        summary.recovery = writer.recover()
        damaged = writer.damaged()
        if damaged and self.settings.repair:
            writer.remove(set(damaged))
            summary.repaired = sorted(damaged)
        elif damaged:
            summary.damaged = sorted(damaged)
        self._done = writer.done_ids()
        if self._done and not self.settings.resume:
            raise ConflictError(
                "resume",
                f"off, but {writer.root} already holds {len(self._done)} "
                "conversation(s): resume it, or write elsewhere",
            )

    def _admit(self, item: Item | DialogError | Skipped) -> bool:
        """Whether an item is this run's to make: its shard's, a valid one (a bad one is failed, a
        skipped one noted), not made yet, not a duplicate id."""
        shard, summary = self.settings.shard, self.summary
        # a bad record without an id belongs to the shard of its location
        if shard is not None and not shard.owns(item.conversation_id or getattr(item, "where", "")):
            summary.other_shards += 1
            return False
        if isinstance(item, DialogError):
            self._fail(item.to_dict(), item)
            return False
        if isinstance(item, Skipped):  # left out by a rule the user set, not a failure
            summary.skipped_by_rule.append(f"{item.where}: {item.reason}")
            return False
        if item.conversation_id in self._done or self.writer.is_done(item.conversation_id):
            summary.skipped_existing += 1
            return False
        first = self._seen.setdefault(item.conversation_id, item.source.describe())
        if first != item.source.describe():
            err = DialogError(
                f"duplicate conversation_id {item.conversation_id!r} (first at {first})",
                item.source.describe(),
                "conversation_id",
                item.conversation_id,
            )
            self._fail(err.to_dict(), err)
            return False
        return True

    def _make(self, item: Any) -> ManifestEntry:
        """Produce one item's conversation into its staging folder, turn by turn, and commit it."""
        try:
            with self.writer.staged(item.conversation_id) as staging:

                def sink(turn: Any) -> Any:
                    if self._abandon.is_set():
                        raise Abandoned(f"{item.conversation_id}: interrupted before it was finished")
                    return staging.add_turn(turn)

                conv = self.producer.produce(item, sink)
                self.summary.account(conv.extra, conv.conversation_id)
                return staging.commit(conv)[1]
        finally:
            for rejected in getattr(item, "rejected", ()):  # dialogs left out of a session
                self._fail(rejected.to_dict(), rejected)

    def _written(self, fut: Future[ManifestEntry], item: Any) -> None:
        """Account for one finished task: written, left to another run, or failed."""
        summary = self.summary
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
            self._fail(_error_dict(item, exc, "voices" if isinstance(exc, VoiceError) else ""), exc)
            return
        summary.generated += 1
        summary.audio_sec += float(entry.speech_duration_sec or 0.0)
        if self._interrupted.is_set():
            summary.finished_after_stop += 1
        self.bar.update(summary)

    def _drain(self, limit: int) -> None:
        """Account for finished conversations, oldest first, until at most `limit` are pending
        (one interrupted while it waits stays pending, to be accounted for after)."""
        while len(self._producing) > limit:
            self._written(*self._producing[0])
            self._producing.popleft()

    def _fail(self, err: dict[str, Any], exc: BaseException | None = None) -> None:
        self.failures.record(err)
        self.bar.update(self.summary)
        if self.settings.on_error == "fail" and exc is not None and not self._stop:
            self._stop.append(exc)

    def _interrupt(self, stop_now: KeyboardInterrupt) -> None:
        self._interrupted.set()
        if not getattr(stop_now, "finish_in_progress", False):
            self._abandon.set()
        for fut, _ in self._producing:
            fut.cancel()  # queued ones never start
        stop_now.summary = self.summary  # type: ignore[attr-defined]  # what was kept, for the message


def _error_dict(item: Any, exc: BaseException, field: str = "") -> dict[str, Any]:
    """A failure's record (failures.jsonl): where, which field, which conversation, why."""
    if isinstance(exc, DialogError):
        return exc.to_dict()
    return {
        "where": item.source.describe(),
        "field": field,
        "conversation_id": item.conversation_id,
        "error": str(exc),
    }


def run_producer(
    items: Iterable[Item | DialogError | Skipped],
    producer: Producer,
    writer: DatasetWriter,
    settings: RunSettings | None = None,
    **fields: Any,
) -> RunSummary:
    """Produce and write every item not yet in the dataset: a `Run` with `settings`, or with
    RunSettings made of `fields` (on_error=..., workers=...)."""
    return Run(producer, writer, settings if settings is not None else RunSettings(**fields))(items)
