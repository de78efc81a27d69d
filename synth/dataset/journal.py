"""Rewriting many files of a dataset so that a kill at any moment leaves the old state or the new
one (synth tokenize): every new file is first written beside its old one under a hidden name
(`.NAME.next`), nothing visible changing, with a marker (`REWRITE`) at the root saying a rewrite
is under way; then the list of renames is written to `JOURNAL` at the root (fsynced) and the
renames are made; the journal and the marker go last. A run killed before the journal leaves the
old state (its hidden files are removed by `roll_forward`); one killed after it is finished by
`roll_forward`, which every writer runs at start-up (synth.dataset.writer.recover), and `synth
validate` says so while it is pending."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

JOURNAL = ".switch.json"
REWRITE = ".rewrite"
NEXT = ".next"


def begin(root: Path) -> None:
    """Say a rewrite is under way (before the first new file is written)."""
    roll_forward(root)
    (root / REWRITE).touch()
    _fsync(root)


def next_path(path: Path) -> Path:
    """Where the new version of `path` is written before the switch."""
    return path.with_name(f".{path.name}{NEXT}")


def write_next(path: Path, data: bytes) -> Path:
    """Write the new version of `path` beside it (fsynced); nothing visible changes."""
    tmp = next_path(path)
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return tmp


def switch(root: Path, paths: Iterable[Path]) -> None:
    """Replace every path by its new version (write_next) as one step: journal, renames, done."""
    targets = [str(p.relative_to(root)) for p in paths]
    journal = root / JOURNAL
    tmp = journal.with_name(journal.name + ".tmp")
    tmp.write_text(json.dumps({"switch": targets}), encoding="utf-8")
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, journal)
    _fsync(root)
    _apply(root, targets)


def roll_forward(root: Path) -> int:
    """Finish a switch that was interrupted after its journal was written (every new file is
    there), or remove the hidden new files of one interrupted before it; returns how many files
    were switched."""
    journal = root / JOURNAL
    marker = root / REWRITE
    if not journal.is_file() and not marker.exists():
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
    _fsync(root)
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
        _fsync(folder)
    (root / JOURNAL).unlink(missing_ok=True)
    (root / REWRITE).unlink(missing_ok=True)
    _fsync(root)
    return done


def _hidden_next(root: Path) -> list[Path]:
    out = [p for p in root.glob(f".*{NEXT}")]
    conversations = root / "conversations"
    if conversations.is_dir():
        out += [p for p in conversations.glob(f"*/.*{NEXT}")]
    return out


def _fsync(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
