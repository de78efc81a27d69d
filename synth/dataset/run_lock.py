"""Tools on one dataset (docs/reliability.md): every process that uses a dataset holds its run
lock (`<out>/.run.lock`), shared by the tools that add conversations or read (generate, serve,
batch --out, convert, merge, splits, export, repair), alone by a tool that rewrites every
finished conversation (tokenize, check), so that a rewrite never runs beside a writer that would
add conversations with the old options. Each holder records who it is in
`.run/<host>-<pid>-<token>`, so that a tool refused names the process it waits for, and `synth
validate` tells a running writer from one that is gone."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import socket
import sys
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DatasetBusy, DatasetError
from .files import is_held
from .journal import JOURNAL, roll_forward
from .journal import REWRITE as REWRITE_MARKER

__all__ = [
    "LOCK",
    "READ",
    "REWRITE",
    "RUN_LOCK",
    "RUNS",
    "WRITE",
    "Holder",
    "Session",
    "holders",
    "is_held",
    "using",
]

LOCK = ".lock"  # at the root: the writers' lock (renames into place and manifest appends)
RUN_LOCK = ".run.lock"  # at the root: shared by every tool that uses the dataset, exclusive by a rewrite
RUNS = ".run"  # <root>/.run/<host>-<pid>-<token>: who holds the run lock (JSON), flocked while it lives
READ, WRITE, REWRITE = "read", "write", "rewrite"
BUSY_RETRY_SEC = 2.0  # a holder between taking the run lock and writing its record is waited for


def _command() -> tuple[str, str]:
    """(tool, command line) of this process: ('synth tokenize', 'synth tokenize ds --wait')."""
    argv = [os.path.basename(sys.argv[0]) if sys.argv else "", *sys.argv[1:]]
    if argv[0] == "__main__.py":  # python -m synth (or -m pytest ...)
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        package = (getattr(spec, "name", None) or "python").split(".")[0]
        argv[0] = "synth" if package == "synth" else f"python -m {package}"
    elif argv[0] in ("", "-c"):  # a Python program using the library
        argv[0] = "python" + (" -c" if argv[0] else "")
    tool = " ".join(argv[:2]) if argv[0] == "synth" and len(argv) > 1 else argv[0]
    return tool, " ".join([argv[0], *(shlex.quote(a) for a in argv[1:])])


@dataclass(frozen=True)
class Holder:
    """A process that uses a dataset now, as its record in `.run/` says."""

    mode: str  # read, write or rewrite
    tool: str
    pid: int
    host: str
    command: str
    cwd: str
    since: float
    waiting: bool = False  # a rewrite waiting (--wait) for the others to finish

    def describe(self) -> str:
        where = f"pid {self.pid}" + ("" if self.host == socket.gethostname() else f" on {self.host}")
        started = time.strftime("%H:%M:%S", time.localtime(self.since))
        return f"{self.tool} ({where}, since {started}: `{self.command}` in {self.cwd})"


def holders(root: Path | str) -> list[Holder]:
    """The processes using a dataset now (their records in `.run/` whose flock is held)."""
    out = []
    try:
        records = sorted(p for p in (Path(root) / RUNS).iterdir() if not p.name.endswith(".new"))
    except OSError:
        return []
    for path in records:
        if not is_held(path):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            out.append(Holder(**{k: data[k] for k in Holder.__dataclass_fields__ if k in data}))
        except (OSError, ValueError, TypeError, UnicodeDecodeError):
            continue  # being replaced, or not ours
    return out


def _busy_message(root: Path, mode: str, others: list[Holder]) -> str:
    names = "; ".join(h.describe() for h in others) or f"a process that holds {root / RUN_LOCK}"
    if mode == REWRITE:
        return (
            f"{root}: in use by {names}. A rewrite of every conversation holds the dataset alone "
            "(docs/reliability.md): run it again once that has finished, or add --wait to wait for it"
        )
    if any(h.waiting for h in others):
        return (
            f"{root}: {names} waits (--wait) to rewrite it, and no other tool starts on it meanwhile: "
            "run this again once it has finished (with the dataset's new settings: see dataset.json then)"
        )
    return (
        f"{root}: being rewritten by {names}. Nothing else may use the dataset until it has finished: "
        "run this again afterwards (with the dataset's new settings: see dataset.json then)"
    )


class Session:
    """A process's hold on a dataset, for as long as it uses it: an flock on `<root>/.run.lock`,
    shared by the tools that add conversations or read (generate, serve, merge, splits, export,
    repair), exclusive by one that rewrites finished conversations (tokenize, check), plus a
    record of who holds it (`.run/<host>-<pid>-<token>`: tool, pid, host, command line, working folder),
    so that a tool refused names the one it waits for. Released by `release()`, when the
    object is collected, or when the process ends (the kernel drops its flocks even on kill -9;
    its record is then left over, unheld, and removed by the next writer's start-up)."""

    def __init__(self, root: Path | str, mode: str, tool: str | None = None):
        if mode not in (READ, WRITE, REWRITE):
            raise ValueError(mode)
        self.root, self.mode = Path(root), mode
        name, self.command = _command()
        self.tool = tool or name
        self.since = time.time()
        self.record: Path | None = None
        self.switched = 0  # files of an interrupted rewrite this hold switched in when it was taken
        self._files: list[Any] = []  # [run lock, record]: closed by release, or by the finalizer
        self._finalizer = weakref.finalize(self, _let_go, self._files, [])

    def info(self, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Who holds the dataset and what for: tool, process, host, command line, working folder,
        since when, and `options` (what a rewrite makes of the dataset, for `synth validate`)."""
        return {**self._who(), "options": options or {}}

    def _who(self) -> dict[str, Any]:
        """The tool, process, host, command line, working folder and start of this hold."""
        return {
            "tool": self.tool,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "cwd": os.getcwd(),
            "since": self.since,
        }

    def describe(self) -> str:
        return Holder(self.mode, self.tool, os.getpid(), socket.gethostname(), self.command, os.getcwd(),
                      self.since).describe()  # fmt: skip

    def acquire(self, wait: bool = False, on_wait: Callable[[list[Holder]], None] | None = None) -> Session:
        """Take the run lock (DatasetBusy naming the holders when it cannot be had now; with `wait`
        a rewrite waits for them, and tools starting meanwhile are refused)."""
        exclusive = self.mode == REWRITE
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: not a folder")
        try:
            lock = open(self.root / RUN_LOCK, "ab")
        except OSError:
            if self.mode == READ:  # a read-only dataset: nobody can rewrite it from here either
                return self
            raise
        self._files.append(lock)
        flag = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        give_up = time.monotonic() + BUSY_RETRY_SEC
        while True:
            try:
                fcntl.flock(lock, flag | fcntl.LOCK_NB)
            except BlockingIOError:
                others = [h for h in holders(self.root) if exclusive or h.mode == REWRITE]
                if wait and exclusive:
                    self._write_record(waiting=True)
                    if on_wait is not None:
                        on_wait(others)
                    fcntl.flock(lock, flag)
                    break
                if not others and time.monotonic() < give_up:
                    time.sleep(0.05)
                    continue
                self.release()
                raise DatasetBusy(_busy_message(self.root, self.mode, others)) from None
            if not exclusive:  # a rewrite waiting for the dataset: start nothing new meanwhile
                waiting = [h for h in holders(self.root) if h.mode == REWRITE]
                if waiting:
                    self.release()
                    raise DatasetBusy(_busy_message(self.root, self.mode, waiting))
            break
        self._write_record(waiting=False)
        if not exclusive:
            self._finish_interrupted_rewrite()
        return self

    def _finish_interrupted_rewrite(self) -> None:
        """A rewrite marked while this shared hold was had was interrupted (a live one would hold
        the dataset alone): finish or undo it under the writers' lock before anything is read."""
        if not (self.root / JOURNAL).exists() and not (self.root / REWRITE_MARKER).exists():
            return
        try:
            fh = open(self.root / LOCK, "ab")
        except OSError as exc:  # a read-only dataset: it cannot be read as one state
            self.release()
            raise DatasetError(
                f"{self.root}: a rewrite of it was interrupted, and it cannot be finished from here "
                f"({exc.strerror or exc}): run `synth validate {shlex.quote(str(self.root))} --recover` "
                "where it can be written"
            ) from None
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            self.switched += roll_forward(self.root)

    def _write_record(self, waiting: bool) -> None:
        """Write (or replace) this process's record: locked before it gets its name, so that no
        start-up clean-up ever sees it unheld while this process lives."""
        runs = self.root / RUNS
        try:
            runs.mkdir(exist_ok=True)
        except OSError:
            return  # a read-only dataset: nobody to tell
        if self.record is None:
            self.record = runs / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        new = self.record.with_name(self.record.name + ".new")
        fh = open(new, "wb")
        fcntl.flock(fh, fcntl.LOCK_EX)
        data = {"mode": self.mode, **self._who(), "waiting": waiting}
        fh.write(json.dumps(data).encode("utf-8"))
        fh.flush()
        os.replace(new, self.record)
        for old in self._files[1:]:
            old.close()
        del self._files[1:]
        self._files.append(fh)
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _let_go, self._files, [self.record])

    def release(self) -> None:
        self._finalizer.detach()
        _let_go(self._files, [self.record] if self.record else [])
        self.record = None


def _let_go(files: list[Any], records: list[Path]) -> None:
    """Drop a session's flocks (the run lock first), then its record."""
    for fh in files:
        with contextlib.suppress(OSError, ValueError):
            fh.close()
    files.clear()
    for path in records:
        with contextlib.suppress(OSError):
            path.unlink()


@contextlib.contextmanager
def using(
    root: Path | str,
    mode: str = READ,
    tool: str | None = None,
    wait: bool = False,
    on_wait: Callable[[list[Holder]], None] | None = None,
) -> Iterator[Session]:
    """Hold a dataset for a block (`synth export` reads it, `synth splits` writes inside it)."""
    session = Session(root, mode, tool).acquire(wait, on_wait)
    try:
        yield session
    finally:
        session.release()
