"""The dataset volume's health: after a write fails (a full or read-only volume) the service
refuses writing calls with UNAVAILABLE and reports NOT_SERVING, and a probe tries the volume
again every few seconds until it has room for a conversation and a probe write succeeds."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .stored import without_root

MIN_ROOM = 1 << 20  # free bytes needed after a failed write before writing is tried again


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged process can still write on the volume that holds `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class VolumeHealth:
    """Whether the dataset folder `root` can be written now. `probe_write` raises OSError unless
    a file can be written and fsynced there (DatasetWriter.probe)."""

    def __init__(self, root: Path, probe_write: Callable[[], None]):
        self.root = root
        self._probe_write = probe_write
        self.writable = threading.Event()
        self.writable.set()
        self.error = ""  # why the last write failed, without the dataset's path
        self.largest_written = 0  # bytes of the largest conversation written here
        self._probing = threading.Lock()

    def written(self, folder: Path) -> None:
        """A conversation's folder was written: its size counts towards `room_needed`."""
        with contextlib.suppress(OSError):
            size = sum(p.stat().st_size for p in folder.iterdir())
            self.largest_written = max(self.largest_written, size)

    def room_needed(self) -> int:
        """Free bytes the volume must have before writing is tried again after a failure: room
        for twice the largest conversation written so far (while one is written, its staged
        full-band audio and its mix are on disk together), 1 MiB at least; so that a failed
        write, whose clean-up frees what it had written, does not flip health straight back."""
        return max(2 * self.largest_written, MIN_ROOM)

    def failed(self, exc: OSError) -> None:
        """A write failed: not writable until a probe says so again."""
        self.error = without_root(str(exc), self.root)
        self.writable.clear()

    def check(self) -> None:
        """Raise OSError unless the volume has `room_needed()` bytes free and a probe write succeeds."""
        room = free_bytes(self.root)
        if room < self.room_needed():
            raise OSError(errno.ENOSPC, f"{room} bytes free")
        self._probe_write()

    def watch(self, every: float, stop: threading.Event, on_writable: Callable[[], None]) -> None:
        """Probe on a thread of its own every `every` seconds until the volume is writable again
        (then call `on_writable`) or `stop` is set; a watch already running is left to it."""
        if self._probing.acquire(blocking=False):
            threading.Thread(
                target=self._probe_until_writable,
                args=(every, stop, on_writable),
                name="synth-probe",
                daemon=True,
            ).start()

    def _probe_until_writable(
        self, every: float, stop: threading.Event, on_writable: Callable[[], None]
    ) -> None:
        try:
            while not stop.is_set():
                try:
                    self.check()
                except OSError:
                    time.sleep(every)
                    continue
                self.writable.set()
                on_writable()
                return
        finally:
            self._probing.release()
