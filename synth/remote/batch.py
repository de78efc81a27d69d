"""The batch client: any dialog source of `synth generate`, sent to one or more servers
(client-side round robin) with bounded concurrency.

Resume: conversations already in the local copy's manifest are not sent, and a server answering
ALREADY_EXISTS counts as done. With `local_out`, each streamed conversation is also written
locally (same atomic writer as the server), for servers whose disk the caller cannot see.
Failures (bad dialogs, RPC errors after retries) go to a JSONL file with their reasons."""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, TextIO

import grpc

from synth_client import AlreadyExists, Backoff, SummaryEvent, SynthClient, TurnEvent, Unavailable

from ..dataset.records import METADATA_FILE, SAMPLES_FILE, ConversationMetadata, ManifestEntry, turn_files
from ..dataset.writer import AlreadyWritten, DatasetWriter
from ..errors import ConfigError, DialogError
from ..workflows.outcome import FailureLog, Progress, RunSummary


def _local_files(events: list[TurnEvent], summary: SummaryEvent) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for ev in events:
        wav, txt = turn_files(ev.turn_id)
        files[wav] = ev.wav
        files[txt] = (ev.transcript + "\n").encode("utf-8")
    files[METADATA_FILE] = ConversationMetadata.from_dict(summary.metadata).to_json().encode("utf-8")
    if summary.samples_jsonl:
        files[SAMPLES_FILE] = summary.samples_jsonl.encode("utf-8")
    files.update(summary.files)  # events' audio, conversation.wav
    return files


class AdaptiveLimit:
    """How many dialogs may be in flight: starts at the configured concurrency, shrinks by a
    third when a server pushes back (RESOURCE_EXHAUSTED, UNAVAILABLE) and grows back by one per
    `limit` successes (additive increase, multiplicative decrease, as TCP does)."""

    def __init__(self, maximum: int):
        self.maximum = maximum
        self.limit = float(maximum)
        self.active = 0
        self._cond = threading.Condition()

    def acquire(self) -> None:
        with self._cond:
            while self.active >= max(1, int(self.limit)):
                self._cond.wait()
            self.active += 1

    def release(self) -> None:
        with self._cond:
            self.active -= 1
            self.limit = min(float(self.maximum), self.limit + 1 / self.limit)
            self._cond.notify_all()

    def pushed_back(self) -> None:
        with self._cond:
            self.limit = max(1.0, self.limit * 2 / 3)


def run_batch(
    dialogs: Iterable[Any],
    servers: Sequence[str],
    concurrency: int = 8,
    local_out: Path | None = None,
    token: str | None = None,
    tls: bool = False,
    failures_path: Path | None = None,
    timeout: float | None = 600.0,
    seed: int | None = None,
    progress: bool = False,
    log: TextIO = sys.stderr,
) -> RunSummary:
    """Send every dialog (synth Dialogs or DialogErrors, from synth.sources.open_dialogs) to the
    servers. A busy or unavailable server never fails a dialog: it is retried with backoff, on the
    next server, until its own deadline (`timeout` seconds in all) passes, and the number in flight
    adapts to the servers' pushback. With `local_out`, every conversation ends up in the local
    copy: ones the server already had are fetched (GetConversation)."""
    if not servers:
        raise ConfigError("servers", "at least one server is needed")
    if concurrency < 1:
        raise ConfigError("concurrency", "must be at least 1", concurrency)
    writer = DatasetWriter(local_out) if local_out else None
    done_ids: set[str] = set()
    if writer:
        writer.recover()
        done_ids = writer.done_ids()
    once = Backoff(attempts=1)  # retries are this function's, across servers
    clients = [SynthClient(s, token=token, tls=tls, backoff=once) for s in servers]
    rr = itertools.cycle(range(len(clients)))
    rr_lock = threading.Lock()
    limit = AdaptiveLimit(concurrency)
    pause = Backoff(attempts=1, initial=0.25, maximum=5.0)
    summary = RunSummary()
    lock = threading.Lock()
    began = time.perf_counter()
    bar = Progress(progress, None, log, unit="dialog")
    if failures_path and failures_path.exists():
        print(f"note: replacing {failures_path} of an earlier run", file=log)
    failures = FailureLog(summary, failures_path, log)
    bar.start()

    def next_client() -> SynthClient:
        with rr_lock:
            return clients[next(rr)]

    def tick() -> None:
        bar.update(summary)

    def record_failure(item: dict[str, Any]) -> None:
        failures.record(item)
        tick()

    def copy_existing(dialog: Any, client: SynthClient, deadline: float | None) -> None:
        turns: list[TurnEvent] = []
        for ev in client.get_conversation(dialog.conversation_id, timeout=_left(deadline)):
            if isinstance(ev, TurnEvent):
                turns.append(ev)
            elif writer is not None:
                writer.write_files(
                    ev.conversation_id, _local_files(turns, ev), ManifestEntry.from_dict(ev.manifest_line)
                )

    def one(dialog: Any) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        failure = {"conversation_id": dialog.conversation_id, "where": dialog.source.describe()}
        attempt = 0
        while True:
            client = next_client()
            turns: list[TurnEvent] = []
            try:
                for ev in client.synthesize(dialog, seed=seed, timeout=_left(deadline)):
                    if isinstance(ev, TurnEvent):
                        turns.append(ev)
                    elif writer is not None:
                        writer.write_files(
                            ev.conversation_id,
                            _local_files(turns, ev),
                            ManifestEntry.from_dict(ev.manifest_line),
                        )
                break
            except Unavailable as exc:  # busy, draining or restarting: back off, try elsewhere
                limit.pushed_back()
                with lock:
                    summary.retried += 1
                wait = pause.delay(attempt)
                attempt += 1
                # Turns received before the server went away are dropped and the dialog made
                # again elsewhere: a server writes a conversation only after its last turn.
                if deadline is not None and time.monotonic() + wait >= deadline:
                    record_failure(
                        {
                            **failure,
                            "server": client.target,
                            "code": exc.code().name,
                            "error": f"{exc.details()} (gave up after {attempt} tries)",
                        }
                    )
                    return
                time.sleep(wait)
            except AlreadyExists:
                try:
                    if writer is not None and dialog.conversation_id not in writer.done_ids():
                        copy_existing(dialog, client, deadline)
                except grpc.RpcError as exc:
                    record_failure(
                        {
                            **failure,
                            "server": client.target,
                            "code": "NOT_COPIED",
                            "error": f"on the server, but the local copy failed: {exc}",
                        }
                    )
                    return
                except AlreadyWritten:
                    pass
                with lock:
                    summary.skipped_existing += 1
                    tick()
                return
            except grpc.RpcError as exc:
                record_failure(
                    {**failure, "server": client.target, "code": exc.code().name, "error": exc.details()}
                )
                return
            except AlreadyWritten:
                with lock:
                    summary.skipped_existing += 1
                    tick()
                return
            except Exception as exc:  # local disk errors: report, keep the batch going
                record_failure({**failure, "server": client.target, "code": "LOCAL", "error": str(exc)})
                return
        with lock:
            summary.generated += 1
            summary.audio_sec += sum(t.duration_sec for t in turns)
        tick()

    def run(dialog: Any) -> None:
        limit.acquire()
        try:
            one(dialog)
        finally:
            limit.release()

    pending: set[Future[None]] = set()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="synth-batch") as pool:
        for item in dialogs:
            if isinstance(item, DialogError):
                record_failure(
                    {
                        "conversation_id": item.conversation_id,
                        "where": item.where,
                        "field": item.field,
                        "server": "",
                        "code": "INVALID_ARGUMENT",
                        "error": item.message,
                    }
                )
                continue
            if item.conversation_id in done_ids:
                summary.skipped_existing += 1
                continue
            while len(pending) >= concurrency:  # bounded: never holds the whole source in memory
                _, pending = wait(pending, return_when=FIRST_COMPLETED)
            summary.sent += 1
            pending.add(pool.submit(run, item))
        wait(pending)
    for c in clients:
        c.close()
    bar.close()
    summary.wall_sec = time.perf_counter() - began
    return summary


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.05, deadline - time.monotonic())
