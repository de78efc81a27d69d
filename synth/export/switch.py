"""Crash-consistent export outputs: a kill at any moment leaves the previous export or the new
one, never a mix (docs/reliability.md, "Exports").

No export writes into its output in place. A folder export is built as a new tree inside a
staging folder beside the output (`.<name>.synth-export/tree`), fsynced, and exchanged with the
old output in one atomic step (Linux `renameat2(RENAME_EXCHANGE)`); the old tree is removed
after. A file export is written beside its output (`.<name>.synth-export`) and renamed over it.
The staging folder is locked while an export runs (a second export into the same output is
refused); what a killed run left is removed by the next one, or, for a resumable export (the
Shar shards), continued from.

An output that already exists is replaced only when it is empty or holds nothing but the names
that export writes: a folder of other files is never removed."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..dataset.files import fsync_dir, fsync_file, fsync_tree
from ..errors import ExportBusy, SynthError

STAGING_SUFFIX = ".synth-export"
OLD_SUFFIX = ".synth-export-old"  # only where the file system cannot exchange two names
TREE = "tree"
JOURNAL = "journal.jsonl"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


@dataclass(frozen=True)
class Stage:
    """Where a folder export writes (`tree`), where it ends up (`out`), and a journal for an
    export that resumes."""

    out: Path
    folder: Path

    @property
    def tree(self) -> Path:
        return self.folder / TREE

    @property
    def journal(self) -> Path:
        return self.folder / JOURNAL

    def final(self, relative: str) -> Path:
        """The path a file written at `tree / relative` has once the export is in place (what
        manifests that hold absolute paths must say)."""
        return self.out / relative


def absolute(out: Path | str) -> Path:
    """`out` with its parent resolved (the output itself may not exist yet)."""
    out = Path(out)
    return out.parent.resolve() / out.name


def _lock(path: Path, flags: int, where: Path) -> int:
    fd = os.open(path, flags, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ExportBusy(f"{where}: another export into it is running (it holds {path})") from None
    return fd


def check_replaceable(out: Path, kind: str, recognize: Callable[[str], bool]) -> None:
    """Refuse an output that is not a folder this export may replace."""
    if out.is_symlink():
        raise SynthError(f"{out}: is a symbolic link; export into a real folder")
    if not out.exists():
        return
    if not out.is_dir():
        raise SynthError(f"{out}: exists and is not a folder (the {kind} export writes a folder)")
    foreign = sorted(p.name for p in out.iterdir() if not recognize(p.name))
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise SynthError(
            f"{out}: exists and holds files a {kind} export does not write ({shown}); "
            "export into a new or empty folder"
        )


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the system or file system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def switch(tree: Path, out: Path, exchange: Callable[[Path, Path], bool] = _exchange) -> None:
    """Put `tree` at `out` in one step; the old `out`, if any, ends up at `tree`. Where names
    cannot be exchanged: `out` is moved aside to `.<name>.synth-export-old` first, and a kill
    between the two renames is undone by `recover_switch` on the next run (the old export
    comes back)."""
    if not os.path.lexists(out):
        os.rename(tree, out)
    elif not exchange(tree, out):
        old = out.with_name(f".{out.name}{OLD_SUFFIX}")
        os.rename(out, old)
        os.rename(tree, out)
        os.rename(old, tree)
    fsync_dir(out.parent)


def recover_switch(out: Path) -> None:
    """Undo a switch that a kill cut between its two renames (file systems without exchange)."""
    old = out.with_name(f".{out.name}{OLD_SUFFIX}")
    if not old.exists():
        return
    if os.path.lexists(out):
        shutil.rmtree(old)
    else:
        os.rename(old, out)


@contextmanager
def staged_folder(
    out: Path | str, kind: str, recognize: Callable[[str], bool], resumable: bool = False
) -> Iterator[Stage]:
    """A staging tree for a folder export, switched into place when the block ends without an
    error. A non-resumable export starts from an empty tree and leaves nothing behind on an
    error; a resumable one finds in `tree` and `journal` what a killed run made (the caller
    decides what of it to keep) and keeps it on an error too."""
    out = absolute(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    recover_switch(out)
    check_replaceable(out, kind, recognize)
    folder = out.with_name(f".{out.name}{STAGING_SUFFIX}")
    folder.mkdir(exist_ok=True)
    fd = _lock(folder, os.O_RDONLY | os.O_DIRECTORY, out)
    stage = Stage(out, folder)
    try:
        if not resumable:
            for child in folder.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        stage.tree.mkdir(exist_ok=True)
        yield stage
        stage.journal.unlink(missing_ok=True)
        fsync_tree(stage.tree)
        switch(stage.tree, out)
        shutil.rmtree(folder)
    except BaseException:
        if not resumable:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        os.close(fd)


@contextmanager
def staged_file(out: Path | str, on_commit: Callable[[], None] | None = None) -> Iterator[Path]:
    """A temporary file beside `out`, renamed over it (fsynced first) when the block ends
    without an error, removed on an error. `on_commit` runs after the rename, still under the
    lock (e.g. removing what only the previous file referred to)."""
    out = absolute(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_dir():
        raise SynthError(f"{out}: is a folder (this export writes one file)")
    tmp = out.with_name(f".{out.name}{STAGING_SUFFIX}")
    fd = _lock(tmp, os.O_WRONLY | os.O_CREAT, out)
    try:
        os.ftruncate(fd, 0)
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, out)
        fsync_dir(out.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    else:
        if on_commit is not None:
            on_commit()
    finally:
        os.close(fd)
