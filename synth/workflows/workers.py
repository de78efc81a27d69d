"""One run in worker processes: N processes, each with its own engine and T ONNX Runtime intra-op
threads, make one dataset together (`synth generate --workers N --threads T`).

Why processes: one engine's ONNX session spreads each sentence over every core, and that scales
less than linearly (docs/benchmarks.md: on two cores, two one-thread processes make 1.03x (Piper)
to 1.14x (Kokoro) the audio of one two-thread process end to end, and the gap grows with the
cores). Several processes fill the machine with work that does not wait on each other, the
pipeline's own Python work included.

How: the parent recovers the dataset (and repairs it), then starts N children, each running the
same source into the same folder (`target(role)`, e.g. synth.api's worker function). The writer's
claims (an flock per conversation, synth.dataset.writer) give each conversation to exactly one of
them, and a conversation depends only on its own seed (synth.seeding), never on who made it or
when, so the dataset is the same for any N (byte for byte apart from timestamps, at the same
threads per worker: ONNX Runtime's sums can round differently with another intra-op thread count).
One worker, the leader, meets every record: it alone reports bad records, duplicates and records
left out by a rule, and lists the ids it owns; the others see only the items to make. Each
worker's failures go to its own file, which the parent merges into `failures.jsonl` as they come
(no duplicates). The parent draws the one progress bar from the manifest and prints one summary.

Stopping: the children are in their own sessions (a terminal's Ctrl-C reaches the parent only) and
die with the parent (PR_SET_PDEATHSIG, SIGKILL, as a single process would); the parent forwards
Ctrl-C (in-progress conversations abandoned) or SIGTERM (finished first), keeps what is finished and
says so. A worker that dies is reported (which, its pid, the signal or exit code) and started
again (at most N times in a run), so what it was making is made by its successor; beyond that the
next resume makes it (exit 3)."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import logging
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dataset.files import replace_bytes
from ..dataset.manifest_repair import entry_id
from ..dataset.records import MANIFEST
from ..dataset.writer import DatasetWriter
from ..domain import Skipped
from ..engines.onnx_session import THREADS_VARIABLE
from ..errors import Abandoned, Claimed, ConflictError, DialogError, SynthError
from .outcome import FAILURES, Progress, RunSummary
from .sharding import Shard
from .worker_plan import AUTO, Plan, parse_count, plan_workers  # the plan, for synth.api

__all__ = ["AUTO", "Plan", "WorkerRole", "WorkersSummary", "parse_count", "plan_workers", "run_workers"]

log = logging.getLogger(__name__)

PARENT = "SYNTH_WORKER_PARENT"  # the parent's pid, for a child to see that it outlived it
# `python -c` puts the working folder first on sys.path: taken out, so that a folder named like a
# package where the user stands never shadows what the parent runs
CHILD = "import sys; sys.path.pop(0); from synth.workflows.workers import child_main; child_main()"
POLL_SEC = 0.2
OWNED, FAILED = "owned.txt", "failed.txt"
# A worker's task comes on its stdin and its outcome goes back on a pipe of its own (pickled, both:
# never through a file, which anyone who can write the dataset's folder could replace).


# --- a worker ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerRole:
    """Who a worker is in its run: its index (0, the leader, meets every record), how many
    workers there are, its own folder (its failures file, the ids it owns, its outcome)."""

    index: int
    count: int
    folder: Path
    shard: Shard | None = None

    @property
    def leader(self) -> bool:
        return self.index == 0

    def items(self, items: Iterable[Any]) -> Iterator[Any]:
        """The records this worker's run meets. The leader meets all of them, to report the bad
        ones, the duplicates and those left out by a rule once for the run, and writes the ids of
        the items it meets (first ones, of its shard) to `owned.txt`, for the summary; the
        others meet only the items to make."""
        seen: set[str] = set()
        owned = open(self.folder / OWNED, "w", encoding="utf-8") if self.leader else None
        try:
            for item in items:
                if isinstance(item, (DialogError, Skipped)):
                    if self.leader:
                        yield item
                    continue
                cid = item.conversation_id
                first = cid not in seen
                seen.add(cid)
                mine = self.shard is None or self.shard.owns(cid)
                if owned is not None:
                    if first and mine:
                        owned.write(cid + "\n")
                    yield item
                elif first and mine:
                    yield item
        finally:
            if owned is not None:
                owned.close()

    def writer(self, writer: DatasetWriter) -> DatasetWriter:
        """The dataset's writer as this worker's run uses it (`_WorkerWriter`)."""
        return _WorkerWriter(writer, self.folder)  # type: ignore[return-value]


class _WorkerWriter:
    """The dataset's writer as a worker's runner sees it. Its `root` (which the runner reads only
    for its failures file, replaced at its start, and for messages) is the worker's folder, so
    that N workers do not remove each other's failures. A conversation that failed in one worker
    is not made again by another: a failure is marked (`failed.txt`) while its maker still holds
    the claim, and a worker that takes a claim looks at the marks first."""

    def __init__(self, writer: DatasetWriter, folder: Path):
        self._writer, self.root = writer, folder
        self._marks = open(folder / FAILED, "a", encoding="utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)

    @contextlib.contextmanager
    def staged(self, conversation_id: str) -> Iterator[Any]:
        with self._writer.staged(conversation_id) as staging:
            if conversation_id in self._failed_elsewhere():
                raise Claimed(f"{conversation_id} failed in another worker of this run")
            try:
                yield staging
            except Abandoned:
                raise
            except (SynthError, OSError):
                self._marks.write(conversation_id + "\n")
                self._marks.flush()
                raise

    def _failed_elsewhere(self) -> set[str]:
        failed: set[str] = set()
        for marks in self.root.parent.glob(f"worker-*/{FAILED}"):
            with contextlib.suppress(OSError):
                failed.update(marks.read_text(encoding="utf-8").split())
        return failed


class _Terminated(KeyboardInterrupt):
    """SIGTERM in a worker: the runner finishes the conversations in progress (as synth.cli's)."""

    finish_in_progress = True


def child_main() -> None:
    """A worker process: `python -c CHILD <fd>`, its task pickled on stdin, its outcome written
    pickled to the file descriptor `fd` (a pipe the parent reads)."""
    outcome_fd = int(sys.argv[1])
    _die_with_parent()
    first_term: list[float] = []

    def on_term(signum: int, frame: object) -> None:
        # the scheduler may signal every process and the parent forward it too: one stop
        if first_term and time.monotonic() - first_term[0] < 2.0:
            return
        if first_term:  # a second SIGTERM: stop at once
            os._exit(128 + signal.SIGTERM)
        first_term.append(time.monotonic())
        raise _Terminated()

    signal.signal(signal.SIGTERM, on_term)
    from ..allocator import limit_arenas

    limit_arenas()
    target, role, logging_setup = pickle.loads(sys.stdin.buffer.read())
    _configure_logging(*logging_setup)
    outcome: dict[str, Any] = {}
    code = 0
    try:
        outcome["summary"] = target(role)
    except KeyboardInterrupt as stop:
        outcome.update(summary=getattr(stop, "summary", None), interrupted=True)
        code = 128 + (signal.SIGTERM if isinstance(stop, _Terminated) else signal.SIGINT)
    except BaseException as exc:  # every error goes to the parent
        outcome["error"] = _portable(exc)
        code = 1
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    outcome["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with os.fdopen(outcome_fd, "wb") as pipe:
        pipe.write(pickle.dumps(outcome))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no interpreter teardown: the engine's threads may still be busy


def _die_with_parent() -> None:
    """SIGKILL this process when the parent dies (Linux), as one process would die with it."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    parent = os.environ.get(PARENT)
    if parent and os.getppid() != int(parent):  # the parent died before the call
        os._exit(1)


def _portable(exc: BaseException) -> BaseException:
    """The error itself when it survives pickling, else a SynthError with its message."""
    try:
        copy: BaseException = pickle.loads(pickle.dumps(exc))
        return copy
    except Exception:  # an exception class that cannot be rebuilt
        plain = SynthError(f"{type(exc).__name__}: {exc}")
        for name in ("reported", "usage"):
            if hasattr(exc, name):
                setattr(plain, name, getattr(exc, name))
        return plain


def _logging_setup() -> tuple[int, list[Any]]:
    """The `synth` logger's level and its handlers' formatters (what the CLI configured), for the
    children to log the same way."""
    logger = logging.getLogger("synth")
    formatters = []
    for handler in logger.handlers:
        try:
            formatters.append(pickle.loads(pickle.dumps(handler.formatter)))
        except Exception:  # a formatter that cannot travel: the plain one
            formatters.append(None)
    return logger.getEffectiveLevel(), formatters


def _configure_logging(level: int, formatters: list[Any]) -> None:
    logger = logging.getLogger("synth")
    logger.setLevel(level)
    for formatter in formatters:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter or logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
    if formatters:
        logger.propagate = False


# --- the parent --------------------------------------------------------------------------------


@dataclass
class WorkersSummary(RunSummary):
    """A run's summary over its workers: what they made together, how they were planned, and
    the workers that died (`left_by_deaths`: items no worker made after a death, for the next
    resume; the run is then not complete, exit 3)."""

    plan: Plan | None = None
    deaths: list[str] = field(default_factory=list)
    left_by_deaths: int = 0  # -1: some, how many not known (the leader died)
    peak_rss: list[int] = field(default_factory=list)  # bytes, per worker that reported

    @property
    def complete(self) -> bool:
        return super().complete and not self.left_by_deaths

    def format(self) -> str:
        lines = [super().format()]
        if self.plan is not None:
            lines.append(f"made by {self.plan.describe()}")
        for death in self.deaths:
            lines.append(f"WORKER DIED: {death}")
        if self.left_by_deaths:
            count = f"{self.left_by_deaths} conversation(s)" if self.left_by_deaths > 0 else "conversations"
            lines.append(
                f"{count} left unmade by the workers that died: run it again to resume (it makes only "
                "what is missing)"
            )
        return "\n".join(lines)


@dataclass
class _Worker:
    index: int
    attempt: int
    folder: Path
    proc: subprocess.Popen[bytes]
    outcome_fd: int  # the read end of the worker's outcome pipe (non-blocking)
    received: bytearray = field(default_factory=bytearray)
    outcome: dict[str, Any] | None = None  # once the worker has ended and sent it
    failures_read: int = 0
    finished: bool = False
    accounted: bool = False  # its outcome (or death) taken into the run's summary

    def receive(self, until_end: bool = False) -> None:
        """Take what the worker has written of its outcome (all of it, once it has ended)."""
        if until_end:
            os.set_blocking(self.outcome_fd, True)
        while True:
            try:
                chunk = os.read(self.outcome_fd, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                break
            self.received += chunk
        os.close(self.outcome_fd)
        self.outcome_fd = -1
        if self.received:
            self.outcome = pickle.loads(bytes(self.received))


def run_workers(
    target: Callable[[WorkerRole], RunSummary],
    writer: DatasetWriter,
    plan: Plan,
    *,
    resume: bool = True,
    repair: bool = False,
    progress: bool = False,
    total: int | None = None,
    shard: Shard | None = None,
) -> WorkersSummary:
    """Run `target(role)` (picklable: a module-level function, or a partial of one) in
    `plan.workers` child processes on `writer`'s dataset, each with `plan.threads` intra-op
    threads; return the run's one summary. What a single run does first (recovery, damaged
    conversations reported or with `repair` taken out, `resume` off refusing a non-empty dataset)
    is done here once, before the children start. An interrupt (KeyboardInterrupt; synth.cli's
    SIGTERM sets `finish_in_progress`) is forwarded and waited for, then raised with the summary
    of what was kept; a worker's error (with on_error 'fail', its first bad item) stops the others
    the SIGTERM way and is raised."""
    summary = WorkersSummary(plan=plan)
    began = time.perf_counter()
    summary.recovery = writer.recover()
    damaged = writer.damaged()
    if damaged and repair:
        writer.remove(set(damaged))
        summary.repaired = sorted(damaged)
    elif damaged:
        summary.damaged = sorted(damaged)
    done_before = writer.done_ids()
    if done_before and not resume:
        raise ConflictError(
            "resume",
            f"off, but {writer.root} already holds {len(done_before)} conversation(s): resume it, or write elsewhere",
        )
    failures_path = writer.root / FAILURES
    failures_path.unlink(missing_ok=True)
    summary.failures_path = str(failures_path)
    # the workers' folder lives in the dataset's .tmp/ with a lock the parent holds, like a staging
    # folder: a later writer removes it if the parent is killed
    run_dir = writer.tmp / f"workers.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    # locked under another name, then named: another writer's clean-up never sees it unheld
    unnamed = run_dir.with_name(run_dir.name + ".lock.new")
    lock = open(unnamed, "wb")
    fcntl.flock(lock, fcntl.LOCK_EX)
    os.replace(unnamed, run_dir.with_name(run_dir.name + ".lock"))
    run_dir.mkdir()
    state = _Parent(target, plan, run_dir, shard, summary, done_before, failures_path)
    bar = Progress(progress, total, sys.stderr)
    bar.start()
    stop: KeyboardInterrupt | None = None
    try:
        for index in range(plan.workers):
            state.start(index)
        while True:
            try:
                state.poll(bar)
                if state.all_finished():
                    break
                time.sleep(POLL_SEC)
            except KeyboardInterrupt as interrupt:
                if stop is not None:  # a second interrupt: stop at once
                    state.signal_all(signal.SIGKILL)
                    raise
                stop = interrupt
                state.stopping = True
                how = signal.SIGTERM if getattr(interrupt, "finish_in_progress", False) else signal.SIGINT
                state.signal_all(how)
        state.poll(bar)
    finally:
        state.signal_all(signal.SIGKILL)  # none is left behind, whatever happened
        for worker in state.current.values():
            worker.proc.wait()
            if worker.outcome_fd >= 0:
                os.close(worker.outcome_fd)
        bar.close()
    summary.wall_sec = time.perf_counter() - began
    state.merge(writer, interrupted=stop is not None)
    if stop is None and not state.errors:
        state.put_in_source_order(writer)
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.with_name(run_dir.name + ".lock").unlink(missing_ok=True)
    lock.close()
    if stop is not None:
        stop.summary = summary  # type: ignore[attr-defined]  # what was kept, for the message
        raise stop
    if state.errors:
        raise state.errors[0]
    return summary


class _Parent:
    """The parent's bookkeeping: the workers, their outcomes, the merged failures and progress."""

    def __init__(
        self,
        target: Callable[[WorkerRole], RunSummary],
        plan: Plan,
        run_dir: Path,
        shard: Shard | None,
        summary: WorkersSummary,
        done_before: set[str],
        failures_path: Path,
    ):
        self.target, self.plan, self.run_dir, self.shard = target, plan, run_dir, shard
        self.summary, self.done_before, self.failures_path = summary, done_before, failures_path
        self.current: dict[int, _Worker] = {}
        self.summaries: list[RunSummary] = []
        self.leader_summary: RunSummary | None = None
        self.owned_file: Path | None = None
        self.errors: list[BaseException] = []
        self.restarts = 0
        self.stopping = False
        self.failure_lines: set[str] = set()
        self.counted: set[str] = set()
        self.manifest_offset = 0
        self.manifest_inode: int | None = None
        self.live = RunSummary()  # what the progress bar shows
        self.logging = _logging_setup()

    def start(self, index: int, attempt: int = 0) -> None:
        folder = self.run_dir / f"worker-{index}.{attempt}"
        folder.mkdir()
        role = WorkerRole(index, self.plan.workers, folder, self.shard)
        task = pickle.dumps((self.target, role, self.logging))
        outcome_read, outcome_write = os.pipe()
        env = dict(os.environ)
        env[PARENT] = str(os.getpid())
        if self.plan.threads is not None:
            for name in (THREADS_VARIABLE, "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
                env[name] = str(self.plan.threads)
        package_root = str(Path(__file__).resolve().parents[2])  # the synth this process runs
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(outcome_write)],
            env=env,
            stdin=subprocess.PIPE,
            pass_fds=(outcome_write,),
            start_new_session=True,  # Ctrl-C reaches the parent, which forwards it once
        )
        os.close(outcome_write)
        os.set_blocking(outcome_read, False)
        self.current[index] = _Worker(index, attempt, folder, proc, outcome_read)
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # a worker dead at once is reported as dead
            proc.stdin.write(task)
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        log.info("worker %d started (pid %d, %s)", index, proc.pid, self.plan.describe())

    def all_finished(self) -> bool:
        return all(w.finished for w in self.current.values())

    def signal_all(self, signum: int) -> None:
        for worker in self.current.values():
            if worker.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.send_signal(signum)

    def poll(self, bar: Progress) -> None:
        for worker in list(self.current.values()):
            self._read_failures(worker, bar)
            if worker.outcome_fd >= 0:
                worker.receive()  # a large outcome would otherwise fill the pipe and block its writer
            if worker.finished or worker.proc.poll() is None:
                continue
            self._read_failures(worker, bar)
            self._finished(worker)
            worker.finished = True  # after its accounting: an interrupt before it accounts it again
        self._read_manifest(bar)

    def _finished(self, worker: _Worker) -> None:
        if worker.accounted:
            return
        worker.accounted = True
        if worker.outcome_fd >= 0:
            worker.receive(until_end=True)
        if worker.index == 0 and (worker.folder / OWNED).exists():
            self.owned_file = worker.folder / OWNED
        outcome = worker.outcome
        if outcome is None:
            self._died(worker)
            return
        if outcome.get("peak_rss"):
            self.summary.peak_rss.append(int(outcome["peak_rss"]))
        if outcome.get("summary") is not None:
            self.summaries.append(outcome["summary"])
            if worker.index == 0:
                self.leader_summary = outcome["summary"]
        if "error" in outcome:
            self.errors.append(outcome["error"])
            if not self.stopping:  # the first error stops the run, the others finish theirs
                self.stopping = True
                self.signal_all(signal.SIGTERM)

    def _died(self, worker: _Worker) -> None:
        code = worker.proc.returncode
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        what = f"worker {worker.index} (pid {worker.proc.pid}) {how} before it finished"
        if self.stopping:
            self.summary.deaths.append(what)
            log.error("%s", what)
            return
        if self.restarts < self.plan.workers:
            self.restarts += 1
            what += "; started again: what it was making is made by its successor"
            self.summary.deaths.append(what)
            log.error("%s", what)
            self.start(worker.index, worker.attempt + 1)
            return
        what += f"; not started again ({self.restarts} restart(s) in this run already)"
        self.summary.deaths.append(what)
        log.error("%s", what)

    def _read_failures(self, worker: _Worker, bar: Progress) -> None:
        """Append the worker's new failures (complete lines) to the dataset's failures file,
        each once (a leader started again reports the bad records again)."""
        path = worker.folder / FAILURES
        try:
            with open(path, "rb") as fh:
                fh.seek(worker.failures_read)
                data = fh.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        new = []
        for raw in data[:end].splitlines():
            line = raw.decode("utf-8").strip()
            if line and line not in self.failure_lines and line not in new:
                new.append(line)
        # written first, then marked read: an interrupt in between repeats a line, never loses one
        if new:
            with open(self.failures_path, "a", encoding="utf-8") as fh:
                fh.write("".join(line + "\n" for line in new))
        self.failure_lines.update(new)
        worker.failures_read += end
        for line in new:
            self.summary.failures.append(json.loads(line))
            self.live.failed += 1
            bar.update(self.live)

    def _read_manifest(self, bar: Progress) -> None:
        """One step of the bar per conversation appended to the manifest since the start."""
        path = self.run_dir.parent.parent / MANIFEST
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return
        if st.st_ino != self.manifest_inode or st.st_size < self.manifest_offset:  # rewritten
            self.manifest_offset, self.manifest_inode = 0, st.st_ino
        with open(path, "rb") as fh:
            fh.seek(self.manifest_offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1
        self.manifest_offset += end
        for raw in data[:end].splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:  # a torn line, repaired by the writers
                continue
            cid = entry.get("conversation_id")
            if not isinstance(cid, str) or cid in self.done_before or cid in self.counted:
                continue
            self.counted.add(cid)
            self.live.audio_sec += float(entry.get("speech_duration_sec") or 0.0)
            bar.update(self.live)

    def merge(self, writer: DatasetWriter, interrupted: bool) -> None:
        """The run's summary from its workers' (each conversation made by one of them)."""
        s = self.summary
        for part in self.summaries:
            s.generated += part.generated
            s.audio_sec += part.audio_sec
            s.asr_failed.extend(part.asr_failed)
            s.asr_threshold = part.asr_threshold if part.asr_threshold is not None else s.asr_threshold
            s.outside_band.extend(part.outside_band)
            s.finished_after_stop += part.finished_after_stop
            s.abandoned += part.abandoned
            rec = part.recovery
            s.recovery.temp_removed.extend(rec.temp_removed)
            s.recovery.orphans_removed.extend(rec.orphans_removed)
            s.left_out.extend(x for x in part.left_out if x not in s.left_out)
        if self.leader_summary is not None:
            s.other_shards = self.leader_summary.other_shards
            s.skipped_by_rule = list(self.leader_summary.skipped_by_rule)
        s.failed = len(s.failures)
        uncovered = s.deaths and not self._finished_after_deaths()
        if self.owned_file is None or self.current[0].outcome is None:
            # the leader never finished: which items the run owns is not known
            if uncovered and not interrupted:
                s.left_by_deaths = -1  # how many is not known
            return
        owned = set(self.owned_file.read_text(encoding="utf-8").split())
        done = writer.done_ids() & owned
        failed = {f.get("conversation_id") for f in s.failures}
        new = done - self.done_before
        if s.deaths and len(new) > s.generated:
            # a worker that died never sent its summary: what it wrote is counted from the manifest
            s.generated, s.audio_sec = len(new), _speech_seconds(writer.manifest, new)
        # in the dataset but not made by this run: there before, or made by another run
        s.skipped_existing = max(0, len(done) - s.generated)
        missing = len(owned - done - failed)
        if interrupted or self.errors or not missing:
            return
        if uncovered:
            s.left_by_deaths = missing
        else:
            s.claimed_elsewhere = missing  # live claims of another run on this folder

    def put_in_source_order(self, writer: DatasetWriter) -> None:
        """Rewrite the manifest so that this run's lines follow the source's order, as one process
        writes them, whichever worker finished first: the dataset, manifest included, is the same
        for any number of workers. Lines made before this run (or by another run on the folder)
        keep their places ahead of them. Under the writers' lock, replaced whole (a kill leaves
        the old order or the new)."""
        if self.owned_file is None or self.current[0].outcome is None:
            return  # which items the run owns, in order, is not known
        order = {cid: i for i, cid in enumerate(self.owned_file.read_text(encoding="utf-8").split())}
        with writer.locked():
            data = writer.manifest.read_bytes()
            lines = data.splitlines(keepends=True)
            ours = {
                i
                for i, line in enumerate(lines)
                if entry_id(line) in order and entry_id(line) not in self.done_before
            }
            kept = [line for i, line in enumerate(lines) if i not in ours]
            made = sorted((lines[i] for i in ours), key=lambda line: order[entry_id(line) or ""])
            new = b"".join(kept + made)
            if new != data:
                replace_bytes(writer.manifest, new, sync_folder=True)

    def _finished_after_deaths(self) -> bool:
        """Whether every worker that died was followed by one that finished."""
        return all(w.outcome is not None for w in self.current.values())


def _speech_seconds(manifest: Path, ids: set[str]) -> float:
    """The speech seconds the manifest lists for the conversations `ids`."""
    total = 0.0
    for raw in manifest.read_bytes().splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:  # a torn line, repaired by the writers
            continue
        if isinstance(entry, dict) and entry.get("conversation_id") in ids:
            total += float(entry.get("speech_duration_sec") or 0.0)
    return total
