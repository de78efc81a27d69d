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

import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import grpc

from synth_client import AlreadyExists, Backoff, SummaryEvent, SynthClient, TurnEvent, Unavailable

from ..dataset.fingerprint import check_options
from ..dataset.records import METADATA_FILE, SAMPLES_FILE, ConversationMetadata, ManifestEntry, turn_files
from ..dataset.writer import AlreadyWritten, DatasetWriter
from ..errors import ConfigError, DeadlinePassed, DialogError, NoServerReachable
from ..workflows.outcome import FailureLog, Progress, RunSummary


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
        self, clients: Sequence[SynthClient], unreachable_timeout: float, probe_timeout: float = 2.0
    ):
        self.breakers = [Breaker(c) for c in clients]
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
        """Whether the server's channel connects now (an UNAVAILABLE from a server that answers
        is pushback; from one that cannot be reached, it is not)."""
        try:
            grpc.channel_ready_future(breaker.client.channel).result(timeout=self.probe_timeout)
            return True
        except grpc.FutureTimeoutError:
            return False

    def describe(self, down_for: float) -> str:
        each = "; ".join(f"{b.client.target} ({b.last_error or 'not reached'})" for b in self.breakers)
        return f"{each}, for {down_for:.0f} s"


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
    tls_ca: Path | None = None,
    unreachable_timeout: float = 10.0,
    resume_with_changes: bool = False,
) -> BatchSummary:
    """Send every dialog (synth Dialogs or DialogErrors, from synth.sources.open_dialogs) to the
    servers. A busy server never fails a dialog: it is retried with backoff, on the next server,
    until its own deadline (`timeout` seconds in all) passes, and the number in flight adapts to
    the servers' pushback. A server that cannot be reached is left out until it can (its
    breaker); when none could be for `unreachable_timeout` seconds, the batch stops and says so.
    With `local_out`, every conversation ends up in the local copy: ones the server already had
    are fetched (GetConversation). `tls_ca`: a PEM file of the CA the servers' certificates are
    signed by (TLS on). The local copy records what it was made with in its dataset.json (by
    these servers, with this `seed`): adding to it with another seed is refused unless
    `resume_with_changes`. The batch ends at the latest `FINAL_GRACE` seconds after the last
    dialog's deadline: calls still in flight then are cancelled and listed (code STUCK)."""
    if not servers:
        raise ConfigError("servers", "at least one server is needed")
    if concurrency < 1:
        raise ConfigError("concurrency", "must be at least 1", concurrency)
    if unreachable_timeout <= 0:
        raise ConfigError("unreachable_timeout", "must be more than 0", unreachable_timeout)
    writer = DatasetWriter(local_out) if local_out else None
    done_ids: set[str] = set()
    if writer:
        writer.recover()
        done_ids = writer.done_ids()
        with writer.locked():
            check_options(writer.root, {"made_by": "synth batch", "seed": seed}, resume_with_changes)
    once = Backoff(attempts=1)  # retries are this function's, across servers
    clients = [SynthClient(s, token=token, tls=tls, backoff=once, tls_ca=tls_ca) for s in servers]
    reach = Servers(clients, unreachable_timeout)
    limit = AdaptiveLimit(concurrency)
    pause = Backoff(attempts=1, initial=0.25, maximum=5.0)
    summary = BatchSummary()
    lock = threading.Lock()
    began = time.perf_counter()
    bar = Progress(progress, None, log, unit="dialog")
    if failures_path and failures_path.exists():
        print(f"note: replacing {failures_path} of an earlier run", file=log)
    failures = FailureLog(summary, failures_path)
    bar.start()

    def tick() -> None:
        bar.update(summary)

    def record_failure(item: dict[str, Any]) -> None:
        failures.record(item)
        tick()

    shown_unreachable = [0]

    def record_unreachable(item: dict[str, Any], why: str) -> None:
        """An UNREACHABLE failure, printed for the first few only (the summary counts them)."""
        entry = {**item, "server": "", "code": "UNREACHABLE", "error": f"no server reachable: {why}"}
        with lock:
            shown_unreachable[0] += 1
            quiet = shown_unreachable[0] > 3
        failures.record(entry, show=not quiet)
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

    deadlines: dict[str, float] = {}  # the dialogs started, by id: their deadlines

    def one(dialog: Any) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        if deadline is not None:
            with lock:
                deadlines[dialog.conversation_id] = deadline
        failure = {"conversation_id": dialog.conversation_id, "where": dialog.source.describe()}
        attempt = 0
        while True:
            try:
                server = reach.pick(deadline)
            except NoServerReachable as exc:
                record_unreachable(failure, str(exc))
                return
            except DeadlinePassed as exc:
                record_failure(
                    {**failure, "server": "", "code": "UNREACHABLE", "error": f"before its deadline: {exc}"}
                )
                return
            client = server.client
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
                reach.reached(server)
                break
            except Unavailable as exc:
                busy = exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED or reach.is_reachable(server)
                if not busy:  # nobody answers there: its breaker opens, the others take the dialog
                    reach.unreachable(server, exc.details())
                    continue
                reach.reached(server)  # busy, draining or cannot write: back off, try elsewhere
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
                reach.reached(server)
                copied = False
                try:
                    if writer is not None and dialog.conversation_id not in writer.done_ids():
                        copy_existing(dialog, client, deadline)
                        copied = True
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
                except Exception as exc:  # local disk errors, a copy not what the server wrote
                    record_failure({**failure, "server": client.target, "code": "LOCAL", "error": str(exc)})
                    return
                with lock:
                    if copied:
                        summary.copied += 1
                    else:
                        summary.skipped_existing += 1
                    tick()
                return
            except grpc.RpcError as exc:
                reach.reached(server)
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
    sent: dict[Future[None], Any] = {}
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="synth-batch")

    def deadline_of(future: Future[None]) -> float | None:
        with lock:
            return deadlines.get(sent[future].conversation_id)

    def cancel_calls() -> None:
        for c in clients:
            c.close()  # every call still in flight on its channel ends (CANCELLED)

    try:
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
            while len(pending) >= concurrency and not reach.gave_up.is_set():  # bounded memory
                _, pending = wait(pending, return_when=FIRST_COMPLETED, timeout=1.0)
            if reach.gave_up.is_set():  # stopped: the rest is listed, not sent
                summary.not_sent += 1
                record_unreachable(
                    {"conversation_id": item.conversation_id, "where": item.source.describe()}, reach.reason
                )
                continue
            summary.sent += 1
            future = pool.submit(run, item)
            pending.add(future)
            sent[future] = item
        stuck = final_wait(pending, deadline_of, cancel_calls)
        for future in stuck:
            summary.stuck += 1
            item = sent[future]
            record_failure(
                {
                    "conversation_id": item.conversation_id,
                    "where": item.source.describe(),
                    "server": "",
                    "code": "STUCK",
                    "error": f"still in flight {FINAL_GRACE:g} s past its deadline, and again after its "
                    "call was cancelled (a local disk that does not answer?); left behind",
                }
            )
    except KeyboardInterrupt:  # Ctrl-C: the calls in flight end now; nothing of them is kept
        cancel_calls()
        raise
    finally:
        pool.shutdown(wait=not summary.stuck, cancel_futures=True)
    for c in clients:
        c.close()
    bar.close()
    summary.unreachable = reach.reason
    summary.wall_sec = time.perf_counter() - began
    return summary


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
