"""The batch client: any dialog source of `synth generate`, sent to one or more servers
(client-side round robin) with bounded concurrency.

Resume: conversations already in the local copy's manifest are not sent, and a server answering
ALREADY_EXISTS counts as done. With `local_out`, each streamed conversation is also written
locally (same atomic writer as the server), for servers whose disk the caller cannot see.
Failures (bad dialogs, RPC errors after retries) go to a JSONL file with their reasons.

A server that pushes back (busy, draining, cannot write) is retried until the dialog's own
deadline; a server that cannot be reached at all (connection refused, no route, a TLS handshake
that fails) is a different thing: its circuit breaker opens, the other servers take its share,
and when none has been reachable for `unreachable_timeout` seconds the batch stops and lists
every dialog it did not make as UNREACHABLE."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from synth_client import AlreadyExists, Backoff, SummaryEvent, SynthClient, TurnEvent, Unavailable
from synth_client.channel import channel_for

from ..dataset.fingerprint import check_options
from ..dataset.records import METADATA_FILE, SAMPLES_FILE, ConversationMetadata, ManifestEntry, turn_files
from ..dataset.writer import DatasetWriter
from ..errors import AlreadyWritten, ConfigError, DeadlinePassed, DialogError, NoServerReachable
from ..workflows.outcome import FailureLog, Progress, RunSummary

log = logging.getLogger(__name__)


def _local_files(events: list[TurnEvent], summary: SummaryEvent) -> dict[str, bytes]:
    """The conversation's files for the local copy: the turns' audio as streamed, then every file
    the server sent as written (its records and its integrity record: the copy is checked against
    that record, not sealed anew); rebuilt from the messages only for a server that sends none."""
    files: dict[str, bytes] = {}
    for ev in events:
        wav, txt = turn_files(ev.turn_id)
        files[wav] = ev.wav
        files[txt] = (ev.transcript + "\n").encode("utf-8")
    files[METADATA_FILE] = ConversationMetadata.from_dict(summary.metadata).to_json().encode("utf-8")
    if summary.samples_jsonl:
        files[SAMPLES_FILE] = summary.samples_jsonl.encode("utf-8")
    files.update(summary.files)  # events' audio, conversation.wav, records, integrity.json
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


@dataclass
class BatchSummary(RunSummary):
    """A run's summary, plus why it stopped early when no server could be reached."""

    unreachable: str = ""
    not_sent: int = 0
    copied: int = 0  # already on a server (made earlier), fetched into the local copy
    stuck: int = 0  # still in flight past their deadline and the final grace

    def format(self) -> str:
        text = super().format()
        if self.copied:
            text += f"\ncopied {self.copied} conversation(s) the servers had made before into the local copy"
        if self.unreachable:
            text += (
                f"\nSTOPPED: no server reachable: {self.unreachable}; {self.not_sent} dialog(s) not sent "
                "and the ones in flight are listed as UNREACHABLE (run again once a server is up: "
                "finished conversations are kept)"
            )
        return text


class Breaker:
    """One server's circuit breaker: closed while calls reach it; open after a call could not
    reach it, for a cool-down that doubles (0.5 s to 5 s); then one call tries it again."""

    MAX_COOLDOWN = 5.0

    def __init__(self, client: SynthClient):
        self.client = client
        self.down_since: float | None = None
        self.retry_at = 0.0
        self.failures = 0
        self.last_error = ""

    def cooldown(self) -> float:
        return min(self.MAX_COOLDOWN, 0.5 * 2 ** max(0, self.failures - 1))


class Servers:
    """The servers of a batch, each behind its breaker: round robin over the ones that are
    reachable (or due for another try); NoServerReachable once none has been for
    `unreachable_timeout` seconds."""

    def __init__(
        self,
        clients: Sequence[SynthClient],
        unreachable_timeout: float,
        probe_timeout: float = 2.0,
        new_channel: Callable[[str], grpc.Channel] | None = None,
    ):
        self.breakers = [Breaker(c) for c in clients]
        self.new_channel = new_channel or (lambda target: grpc.insecure_channel(target))
        self.unreachable_timeout, self.probe_timeout = unreachable_timeout, probe_timeout
        self._lock = threading.Lock()
        self._next = 0
        self.gave_up = threading.Event()
        self.reason = ""

    def pick(self, deadline: float | None) -> Breaker:
        while True:
            now = time.monotonic()
            with self._lock:
                if self.gave_up.is_set():
                    raise NoServerReachable(self.reason)
                up = [b for b in self.breakers if b.down_since is None]
                due = [b for b in self.breakers if b.down_since is not None and b.retry_at <= now]
                if up:
                    chosen = up[self._next % len(up)]
                    self._next += 1
                    return chosen
                if due:  # one call tries it again; the others wait for its answer
                    due[0].retry_at = now + due[0].cooldown()
                    return due[0]
                down_for = now - max(b.down_since or now for b in self.breakers)
                if down_for >= self.unreachable_timeout:
                    self.reason = self.describe(down_for)
                    self.gave_up.set()
                    raise NoServerReachable(self.reason)
                last_down = max(b.down_since or now for b in self.breakers)
                wake = min(min(b.retry_at for b in self.breakers), last_down + self.unreachable_timeout)
            if deadline is not None and now >= deadline:
                raise DeadlinePassed(self.describe(down_for))
            time.sleep(max(0.01, min(wake, deadline if deadline is not None else wake) - now))

    def reached(self, breaker: Breaker) -> None:
        with self._lock:
            breaker.down_since, breaker.failures = None, 0

    def unreachable(self, breaker: Breaker, error: str) -> None:
        now = time.monotonic()
        with self._lock:
            if breaker.down_since is None:
                breaker.down_since = now
            breaker.failures += 1
            breaker.retry_at = now + breaker.cooldown()
            breaker.last_error = " ".join(error.split())[:200]

    def is_reachable(self, breaker: Breaker) -> bool:
        """Whether the server accepts a connection now (an UNAVAILABLE from a server that answers
        is pushback; from one that cannot be reached, it is not). Asked on a channel of its own:
        the calls' channel may still say READY for an instant after its server was killed."""
        channel = self.new_channel(breaker.client.target)
        try:
            grpc.channel_ready_future(channel).result(timeout=self.probe_timeout)
            return True
        except grpc.FutureTimeoutError:
            return False
        finally:
            channel.close()

    def describe(self, down_for: float) -> str:
        each = "; ".join(f"{b.client.target} ({b.last_error or 'not reached'})" for b in self.breakers)
        return f"{each}, for {down_for:.0f} s"


@dataclass(frozen=True)
class BatchSettings:
    """How a batch goes: where it sends (`servers`, with `token`, `tls`, `tls_ca`: a PEM file of
    the CA the servers' certificates are signed by, TLS on), how many dialogs at once
    (`concurrency`), how long each may take (`timeout` seconds, retries included), when it stops
    for servers that cannot be reached (`unreachable_timeout`), where it keeps a local copy
    (`local_out`, made with `seed`; adding to one made with another seed is refused unless
    `resume_with_changes`) and lists its failures (`failures_path`), and whether it draws a
    progress bar."""

    servers: Sequence[str]
    concurrency: int = 8
    local_out: Path | None = None
    token: str | None = None
    tls: bool = False
    tls_ca: Path | None = None
    failures_path: Path | None = None
    timeout: float | None = 600.0
    seed: int | None = None
    progress: bool = False
    unreachable_timeout: float = 10.0
    resume_with_changes: bool = False

    def check(self) -> None:
        if not self.servers:
            raise ConfigError("servers", "at least one server is needed")
        if self.concurrency < 1:
            raise ConfigError("concurrency", "must be at least 1", self.concurrency)
        if self.unreachable_timeout <= 0:
            raise ConfigError("unreachable_timeout", "must be more than 0", self.unreachable_timeout)


class BatchReport:
    """What a batch says as it goes, from any of its threads: the summary's counts, the failures
    (file and log lines; after the first few UNREACHABLE ones, the same reason is only counted)
    and the progress bar."""

    SHOWN_UNREACHABLE = 3

    def __init__(self, failures_path: Path | None, progress: bool):
        self.summary = BatchSummary()
        self._lock = threading.Lock()
        self._unreachable = 0
        self.bar = Progress(progress, None, sys.stderr, unit="dialog")
        if failures_path and failures_path.exists():
            log.warning("replacing %s of an earlier run", failures_path)
        self.failures = FailureLog(self.summary, failures_path)
        self.bar.start()

    def failed(self, item: dict[str, Any], show: bool = True) -> None:
        self.failures.record(item, show=show)
        self.bar.update(self.summary)

    def unreachable(self, item: dict[str, Any], why: str) -> None:
        """A dialog not made because no server could be reached; logged for the first few only."""
        with self._lock:
            self._unreachable += 1
            show = self._unreachable <= self.SHOWN_UNREACHABLE
        entry = {**item, "server": "", "code": "UNREACHABLE", "error": f"no server reachable: {why}"}
        self.failed(entry, show=show)

    def made(self, turns: list[TurnEvent]) -> None:
        with self._lock:
            self.summary.generated += 1
            self.summary.audio_sec += sum(t.duration_sec for t in turns)
        self.bar.update(self.summary)

    def existing(self, copied: bool) -> None:
        """A dialog a server had made before: copied into the local copy, or already there."""
        with self._lock:
            if copied:
                self.summary.copied += 1
            else:
                self.summary.skipped_existing += 1
        self.bar.update(self.summary)

    def count(self, name: str) -> None:
        """One more of a plain count of the summary (sent, retried, skipped_existing, ...)."""
        with self._lock:
            setattr(self.summary, name, getattr(self.summary, name) + 1)

    def finish(self, unreachable: str, wall_sec: float) -> BatchSummary:
        self.bar.close()
        self.summary.unreachable = unreachable
        self.summary.wall_sec = wall_sec
        return self.summary


@dataclass
class Sending:
    """One dialog on its way: its deadline (time.monotonic(); None: none), what its failures say
    of it, and how many times servers pushed it back."""

    dialog: Any
    deadline: float | None
    failure: dict[str, Any]
    pushed_back: int = 0

    def left(self) -> float | None:
        return _left(self.deadline)


class BatchRun:
    """A batch of dialogs sent to servers (see the module's docstring). A busy server never fails
    a dialog: it is retried with backoff, on the next server, until its own deadline, and the
    number in flight adapts to the servers' pushback. A server that cannot be reached is left out
    until it can (its breaker); when none could be for `unreachable_timeout` seconds, the batch
    stops and says so. With a local copy, every conversation ends up in it: ones a server already
    had are fetched (GetConversation). The batch ends at the latest `FINAL_GRACE` seconds after
    the last dialog's deadline: calls still in flight then are cancelled and listed (STUCK)."""

    def __init__(self, settings: BatchSettings):
        settings.check()
        self.settings = settings
        self.writer, self.done_ids = _open_local_copy(settings)
        once = Backoff(attempts=1)  # retries are the batch's, across servers
        self.clients = [
            SynthClient(s, token=settings.token, tls=settings.tls, backoff=once, tls_ca=settings.tls_ca)
            for s in settings.servers
        ]
        self.servers = Servers(
            self.clients,
            settings.unreachable_timeout,
            new_channel=lambda target: channel_for(target, settings.tls, tls_ca=settings.tls_ca),
        )
        self.limit = AdaptiveLimit(settings.concurrency)
        self.pause = Backoff(attempts=1, initial=0.25, maximum=5.0)
        self.report = BatchReport(settings.failures_path, settings.progress)
        self._lock = threading.Lock()
        self._deadlines: dict[str, float] = {}  # the dialogs started, by id: their deadlines
        self._pending: set[Future[None]] = set()
        self._sent: dict[Future[None], Any] = {}

    def run(self, dialogs: Iterable[Any]) -> BatchSummary:
        """Send every dialog (Dialogs or DialogErrors, from synth.dialogs.sources.open_dialogs)."""
        began = time.perf_counter()
        pool = ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="synth-batch")
        try:
            for item in dialogs:
                self._admit(item, pool)
            self._wait_for_the_last()
        except KeyboardInterrupt:  # Ctrl-C: the calls in flight end now; nothing of them is kept
            self._cancel_calls()
            raise
        finally:
            pool.shutdown(wait=not self.report.summary.stuck, cancel_futures=True)
        self._cancel_calls()
        return self.report.finish(self.servers.reason, time.perf_counter() - began)

    def _admit(self, item: Any, pool: ThreadPoolExecutor) -> None:
        """Send one item of the source, or say why not (a bad dialog, made already, stopped)."""
        if isinstance(item, DialogError):
            self.report.failed(
                {
                    "conversation_id": item.conversation_id,
                    "where": item.where,
                    "field": item.field,
                    "server": "",
                    "code": "INVALID_ARGUMENT",
                    "error": item.message,
                }
            )
            return
        if item.conversation_id in self.done_ids:
            self.report.count("skipped_existing")
            return
        while len(self._pending) >= self.settings.concurrency and not self.servers.gave_up.is_set():
            _, self._pending = wait(self._pending, return_when=FIRST_COMPLETED, timeout=1.0)  # bounded memory
        if self.servers.gave_up.is_set():  # stopped: the rest is listed, not sent
            self.report.count("not_sent")
            where = {"conversation_id": item.conversation_id, "where": item.source.describe()}
            self.report.unreachable(where, self.servers.reason)
            return
        self.report.count("sent")
        future = pool.submit(self._send_when_allowed, item)
        self._pending.add(future)
        self._sent[future] = item

    def _wait_for_the_last(self) -> None:
        """Wait for the calls in flight up to their deadlines and the grace; list the stuck ones."""
        for future in final_wait(self._pending, self._deadline_of, self._cancel_calls):
            self.report.count("stuck")
            item = self._sent[future]
            self.report.failed(
                {
                    "conversation_id": item.conversation_id,
                    "where": item.source.describe(),
                    "server": "",
                    "code": "STUCK",
                    "error": f"still in flight {FINAL_GRACE:g} s past its deadline, and again after its "
                    "call was cancelled (a local disk that does not answer?); left behind",
                }
            )

    def _deadline_of(self, future: Future[None]) -> float | None:
        with self._lock:
            return self._deadlines.get(self._sent[future].conversation_id)

    def _cancel_calls(self) -> None:
        for client in self.clients:
            client.close()  # every call still in flight on its channel ends (CANCELLED)

    def _send_when_allowed(self, dialog: Any) -> None:
        self.limit.acquire()
        try:
            self.send(dialog)
        finally:
            self.limit.release()

    def send(self, dialog: Any) -> None:
        """One dialog, from server to server, until it is made, found made, failed or late."""
        sending = self._start(dialog)
        while True:
            server = self._pick(sending)
            if server is None or self._attempt(sending, server):
                return

    def _start(self, dialog: Any) -> Sending:
        timeout = self.settings.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        if deadline is not None:
            with self._lock:
                self._deadlines[dialog.conversation_id] = deadline
        where = {"conversation_id": dialog.conversation_id, "where": dialog.source.describe()}
        return Sending(dialog, deadline, where)

    def _pick(self, sending: Sending) -> Breaker | None:
        """The server to try next; None (reported) when none can be reached in time."""
        try:
            return self.servers.pick(sending.deadline)
        except NoServerReachable as exc:
            self.report.unreachable(sending.failure, str(exc))
        except DeadlinePassed as exc:
            error = f"before its deadline: {exc}"
            self.report.failed({**sending.failure, "server": "", "code": "UNREACHABLE", "error": error})
        return None

    def _attempt(self, sending: Sending, server: Breaker) -> bool:
        """One call to one server; True when the dialog is settled (made, made before, failed)."""
        client = server.client
        try:
            stream = client.synthesize(sending.dialog, seed=self.settings.seed, timeout=sending.left())
            turns = self._receive(stream)
        except Unavailable as exc:
            return self._unavailable(sending, server, exc)
        except AlreadyExists:
            self.servers.reached(server)
            self._copy_existing(sending, client)
            return True
        except grpc.RpcError as exc:
            self.servers.reached(server)
            self._failed(sending, client, exc.code().name, exc.details())
            return True
        except AlreadyWritten:
            self.report.existing(copied=False)
            return True
        except Exception as exc:  # local disk errors: report, keep the batch going
            self._failed(sending, client, "LOCAL", str(exc))
            return True
        self.servers.reached(server)
        self.report.made(turns)
        return True

    def _unavailable(self, sending: Sending, server: Breaker, exc: Unavailable) -> bool:
        """A server that cannot be reached is left for the others (False: try the next one); one
        that answers but is busy, draining or cannot write pushes back: wait, then try again
        (True once the wait would pass the dialog's deadline: failed)."""
        busy = exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED or self.servers.is_reachable(server)
        if not busy:  # nobody answers there: its breaker opens, the others take the dialog
            self.servers.unreachable(server, exc.details())
            return False
        self.servers.reached(server)
        self.limit.pushed_back()
        self.report.count("retried")
        pause = self.pause.delay(sending.pushed_back)
        sending.pushed_back += 1
        # Turns received before the server went away are dropped and the dialog made again
        # elsewhere: a server writes a conversation only after its last turn.
        if sending.deadline is not None and time.monotonic() + pause >= sending.deadline:
            error = f"{exc.details()} (gave up after {sending.pushed_back} tries)"
            self._failed(sending, server.client, exc.code().name, error)
            return True
        time.sleep(pause)
        return False

    def _copy_existing(self, sending: Sending, client: SynthClient) -> None:
        """A conversation the server made before: fetched into the local copy unless it is there."""
        copied = False
        try:
            if self.writer is not None and sending.dialog.conversation_id not in self.writer.done_ids():
                self._receive(client.get_conversation(sending.dialog.conversation_id, timeout=sending.left()))
                copied = True
        except grpc.RpcError as exc:
            self._failed(sending, client, "NOT_COPIED", f"on the server, but the local copy failed: {exc}")
            return
        except AlreadyWritten:
            pass
        except Exception as exc:  # local disk errors, a copy not what the server wrote
            self._failed(sending, client, "LOCAL", str(exc))
            return
        self.report.existing(copied)

    def _receive(self, events: Iterable[Any]) -> list[TurnEvent]:
        """A conversation's streamed events: its turns, written with its summary into the local
        copy when there is one."""
        turns: list[TurnEvent] = []
        for ev in events:
            if isinstance(ev, TurnEvent):
                turns.append(ev)
            elif self.writer is not None:
                self.writer.write_files(
                    ev.conversation_id, _local_files(turns, ev), ManifestEntry.from_dict(ev.manifest_line)
                )
        return turns

    def _failed(self, sending: Sending, client: SynthClient, code: str, error: str) -> None:
        self.report.failed({**sending.failure, "server": client.target, "code": code, "error": error})


def _open_local_copy(settings: BatchSettings) -> tuple[DatasetWriter | None, set[str]]:
    """The local copy's writer (recovered, its options checked) and the conversations it has."""
    if not settings.local_out:
        return None, set()
    writer = DatasetWriter(settings.local_out)
    writer.recover()
    done_ids = writer.done_ids()
    with writer.locked():
        made_with = {"made_by": "synth batch", "seed": settings.seed}
        check_options(writer.root, made_with, settings.resume_with_changes)
    return writer, done_ids


def run_batch(dialogs: Iterable[Any], servers: Sequence[str], **settings: Any) -> BatchSummary:
    """Send every dialog to the servers: `BatchRun(BatchSettings(servers, **settings)).run(dialogs)`
    (the settings by name: concurrency, local_out, timeout, ...)."""
    return BatchRun(BatchSettings(servers, **settings)).run(dialogs)


FINAL_GRACE = 30.0  # seconds past a dialog's deadline before the batch stops waiting for it


def final_wait(
    pending: set[Future[None]],
    deadline_of: Callable[[Future[None]], float | None],
    cancel: Callable[[], None],
    grace: float | None = None,
    tick: float = 0.5,
) -> set[Future[None]]:
    """Wait for the calls in flight, but not forever: once one is `grace` seconds past its
    deadline (`deadline_of`, time.monotonic(); None: not started, or none), `cancel()` (the
    calls end) and wait `grace` more. Returns the futures still not done then."""
    grace = FINAL_GRACE if grace is None else grace
    cancelled_at: float | None = None
    while pending:
        _, pending = wait(pending, timeout=tick)
        now = time.monotonic()
        if not pending:
            break
        if cancelled_at is None:
            due = [d for d in map(deadline_of, pending) if d is not None]
            if due and now > min(due) + grace:
                cancel()
                cancelled_at = now
        elif now - cancelled_at > grace:
            break
    return pending


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.05, deadline - time.monotonic())
