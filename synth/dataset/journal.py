"""Rewriting many files of a dataset so that a kill at any moment leaves the old state or the new
one (synth tokenize): every new file is first written beside its old one under a hidden name
(`.NAME.next`), nothing visible changing, with a marker (`REWRITE`) at the root saying a rewrite
is under way; then the list of renames is written to `JOURNAL` at the root (fsynced) and the
renames are made; the journal and the marker go last. A run killed before the journal leaves the
old state (its hidden files are removed by `roll_forward`); one killed after it is finished by
`roll_forward`, which every writer runs at start-up (synth.dataset.writer.DatasetWriter.recover), and `synth
validate` says so while it is pending.

The marker holds who rewrites and into what (tool, pid, command line, the new options), so that
`synth validate` can say which state the dataset is in and what to run. `Rewrite` is the whole
protocol for a tool (synth.dataset.writer.DatasetWriter.rewriting holds the dataset alone around
it)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .files import fsync_dir, replace_bytes, write_durable
from .integrity import ALGORITHM, INTEGRITY_FILE, read_record

JOURNAL = ".switch.json"
REWRITE = ".rewrite"
NEXT = ".next"


def begin(root: Path, info: Mapping[str, Any] | None = None) -> None:
    """Say a rewrite is under way (before the first new file is written), and who makes it into
    what (`info`: tool, pid, command, options; read back by `marker`)."""
    roll_forward(root)
    write_durable(root / REWRITE, json.dumps(dict(info or {})).encode("utf-8"))
    fsync_dir(root)


def marker(root: Path) -> dict[str, Any] | None:
    """What the marker of a rewrite under way (or interrupted) says; None when there is none ({}
    for one that says nothing: an older synth's, or torn)."""
    try:
        data = json.loads((root / REWRITE).read_text(encoding="utf-8") or "{}")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def pending(root: Path) -> list[str]:
    """The files a journal names (a switch interrupted after its journal was written), [] when
    none is pending."""
    try:
        targets = json.loads((root / JOURNAL).read_text(encoding="utf-8"))["switch"]
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return []
    return [t for t in targets if isinstance(t, str)]


def hidden_new_files(root: Path) -> list[Path]:
    """The new versions written beside their files (`.NAME.next`), switched in or not."""
    return _hidden_next(root)


def next_path(path: Path) -> Path:
    """Where the new version of `path` is written before the switch."""
    return path.with_name(f".{path.name}{NEXT}")


def write_next(path: Path, data: bytes) -> Path:
    """Write the new version of `path` beside it (fsynced); nothing visible changes."""
    tmp = next_path(path)
    write_durable(tmp, data)
    return tmp


def _relative(root: Path, path: Path) -> str:
    """`path` as a path inside `root`, however either was given (relative, `.`, through a
    symbolic link, with a trailing slash)."""
    rel = os.path.relpath(os.path.realpath(path), os.path.realpath(root))
    if rel == os.curdir or rel.split(os.sep)[0] == os.pardir:
        raise ValueError(f"{path} is not inside the dataset {root}")
    return rel


def switch(root: Path, paths: Iterable[Path]) -> None:
    """Replace every path by its new version (write_next) as one step: journal, renames, done."""
    targets = [_relative(root, p) for p in paths]
    journal = root / JOURNAL
    data = json.dumps({"switch": targets}).encode("utf-8")
    replace_bytes(journal, data, tmp=journal.with_name(journal.name + ".tmp"), sync_folder=True)
    _apply(root, targets)
    (root / REWRITE).unlink(missing_ok=True)  # last: until it goes, validate knows what happened
    fsync_dir(root)


def roll_forward(root: Path, sweep: bool = False) -> int:
    """Finish a switch that was interrupted after its journal was written (every new file is
    there), or remove the hidden new files of one interrupted before it; returns how many files
    were switched. `sweep`: look for hidden new files even where no rewrite is marked."""
    journal = root / JOURNAL
    marker = root / REWRITE
    if not journal.is_file() and not marker.exists() and not sweep:
        return 0  # nothing was under way (the usual case: no folder is looked into)
    done = 0
    if journal.is_file():
        try:
            targets = json.loads(journal.read_text(encoding="utf-8"))["switch"]
        except (ValueError, KeyError, UnicodeDecodeError):
            targets = []  # torn before its rename: the switch had not begun
        done = _apply(root, targets)
    (root / (JOURNAL + ".tmp")).unlink(missing_ok=True)
    for leftover in _hidden_next(root):
        leftover.unlink(missing_ok=True)
    marker.unlink(missing_ok=True)
    fsync_dir(root)
    return done


def _apply(root: Path, targets: list[str]) -> int:
    done = 0
    folders = set()
    for rel in targets:
        path = root / rel
        new = next_path(path)
        if new.exists():
            os.replace(new, path)
            done += 1
        folders.add(path.parent)
    for folder in folders:
        fsync_dir(folder)
    (root / JOURNAL).unlink(missing_ok=True)
    fsync_dir(root)
    return done


def _hidden_next(root: Path) -> list[Path]:
    out = [p for p in root.glob(f".*{NEXT}")]
    conversations = root / "conversations"
    if conversations.is_dir():
        out += [p for p in conversations.glob(f"*/.*{NEXT}")]
    splits = root / "splits"  # synth tokenize rewrites the curriculum splits inside the dataset
    if splits.is_dir():
        out += [p for p in splits.glob(f".*{NEXT}")]
    return out


class Rewrite:
    """New versions of files of a dataset, written beside the old ones (nothing visible changes)
    and switched in as one step by `switch()`; `abandon()` removes them. Made by
    synth.dataset.writer.DatasetWriter.rewriting, which holds the dataset alone around it."""

    def __init__(self, root: Path, info: Mapping[str, Any] | None = None):
        self.root = root
        self.targets: list[Path] = []
        begin(root, info)

    def write(self, path: Path, data: bytes) -> None:
        """The new version of one file of the dataset."""
        write_next(path, data)
        self.targets.append(path)

    def conversation(self, folder: Path, files: Mapping[str, bytes]) -> None:
        """New versions of some files of a conversation folder (plain names, checked by the
        caller: synth.dataset.reader.ConversationRef.file), and of its integrity record, which
        follows them."""
        for name, data in files.items():
            self.write(folder / name, data)
        sealed = read_record(folder)
        if sealed is not None:
            for name, data in files.items():
                sealed["files"][name] = {"size": len(data), ALGORITHM: hashlib.sha256(data).hexdigest()}
            body = (json.dumps(sealed, indent=1, sort_keys=True) + "\n").encode("utf-8")
            self.write(folder / INTEGRITY_FILE, body)

    def switch(self) -> None:
        switch(self.root, self.targets)

    def abandon(self) -> None:
        """Nothing was switched yet: the hidden new files go, the dataset stays the old one."""
        roll_forward(self.root)
