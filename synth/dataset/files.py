"""Durable file operations, written once for every part of synth that must survive a kill or a
power cut (the writer, the journal, dataset.json, the exports): a file's bytes on disk before
anything names it, a whole-file replacement that leaves the old file or the new one, a folder's
entries on disk, and whether a lock file's owner is still alive."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path


def fsync_file(path: Path | str) -> None:
    """Flush a file that was written (and closed) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path | str) -> None:
    """Flush a folder's entries (names made, renamed or removed in it) to disk: a rename is only
    durable once its folder is."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(top: Path | str) -> None:
    """Every file and folder under `top` on disk, so that a switch into place never exposes a file
    whose data is still only in memory."""
    for folder, _dirs, files in os.walk(top):
        for name in files:
            fsync_file(os.path.join(folder, name))
        fsync_dir(folder)


def write_durable(path: Path | str, data: bytes) -> None:
    """Write a file whole and flush it to disk before returning (it is named by something written
    after it: a rename, a journal, a manifest line)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def replace_bytes(path: Path, data: bytes, tmp: Path | None = None, sync_folder: bool = False) -> None:
    """Replace a file whole: a kill leaves the old file or the new one, never a mix. The new bytes
    go to a hidden sibling (`tmp`, by default `.NAME.new`), flushed, then renamed over `path`;
    `sync_folder` also makes the rename itself durable."""
    tmp = tmp if tmp is not None else path.with_name(f".{path.name}.new")
    try:
        write_durable(tmp, data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if sync_folder:
        fsync_dir(path.parent)


def replace_text(path: Path, text: str) -> None:
    """`replace_bytes` for a text file (UTF-8)."""
    replace_bytes(path, text.encode("utf-8"))


def remove_path(path: Path) -> None:
    """Remove a folder, a file or a symbolic link (the link itself, never what it points to)."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def is_held(path: Path | str) -> bool:
    """Whether a live process holds the flock of a lock or record file (probed with a shared lock,
    so that two probes never mistake each other for a holder; the kernel drops a process's flocks
    when it dies, even on kill -9)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def left_over(path: Path | str) -> bool:
    """A lock file that exists and that nobody holds: its owner took the lock before it made what
    the lock guards, so an unheld one was left by a process that is gone."""
    return os.path.exists(path) and not is_held(path)
