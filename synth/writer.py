"""The dataset writer: a conversation becomes visible all at once or not at all.

Each conversation is written into `<out>/.tmp/`, fsynced, then renamed into
`<out>/conversations/<id>`; its manifest line is appended after the rename. Rename and append
happen under one file lock, shared by every process writing to the same root, so a crash leaves
at worst a temporary folder or a renamed folder without its line, both removed by `recover()`,
never a half-written conversation or a duplicated line."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .audio import wav_bytes
from .domain import Conversation
from .errors import SynthError
from .ids import conversation_dir
from .metadata import conversation_metadata
from .records import (
    MANIFEST,
    METADATA_FILE,
    SAMPLES_FILE,
    ConversationMetadata,
    ManifestEntry,
    samples_jsonl,
    turn_files,
)

TMP = ".tmp"
LOCK = ".lock"


class AlreadyWritten(SynthError):
    """The conversation is already in the manifest (another worker or an earlier run wrote it)."""


@dataclass
class Recovery:
    """What `recover()` cleaned up, for the run summary."""

    temp_removed: list[str] = field(default_factory=list)
    orphans_removed: list[str] = field(default_factory=list)
    manifest_tail_truncated: bool = False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_text(path: Path, text: str) -> None:
    """Replace one file of a finished dataset whole: write a hidden sibling, fsync, rename."""
    tmp = path.with_name(f".{path.name}.new")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DatasetWriter:
    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.conversations = self.root / "conversations"
        self.tmp = self.root / TMP
        self.manifest = self.root / MANIFEST
        for d in (self.root, self.conversations, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self._mutex = threading.Lock()
        self._done: set[str] = set()
        self._offset = 0

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across threads (mutex) and processes (flock on <out>/.lock)."""
        with self._mutex, open(self.root / LOCK, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _refresh(self) -> None:
        """Read manifest lines appended since the last look (by any process). Caller holds the lock."""
        if not self.manifest.exists():
            self._done, self._offset = set(), 0
            return
        with open(self.manifest, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # an unterminated tail is a write in progress or a crash
        for n, line in enumerate(data[:end].splitlines(), start=1):
            if not line.strip():
                continue
            try:
                self._done.add(json.loads(line)["conversation_id"])
            except (ValueError, KeyError, TypeError):
                raise SynthError(
                    f"{self.manifest}: unreadable line after byte {self._offset} "
                    f"(+{n} lines); fix or remove it"
                ) from None
        self._offset += end

    def done_ids(self) -> set[str]:
        with self.locked():
            self._refresh()
            return set(self._done)

    def recover(self) -> Recovery:
        """Clean up after an interrupted run: cut an unterminated manifest tail, remove temporary
        folders of processes that are gone, and remove conversation folders that have no manifest
        line (renamed into place, then killed before the append): they are synthesized again."""
        report = Recovery()
        with self.locked():
            if self.manifest.exists():
                data = self.manifest.read_bytes()
                if data and not data.endswith(b"\n"):
                    with open(self.manifest, "r+b") as fh:
                        fh.truncate(data.rfind(b"\n") + 1)
                        os.fsync(fh.fileno())
                    report.manifest_tail_truncated = True
            self._done, self._offset = set(), 0
            self._refresh()
            for entry in sorted(self.tmp.iterdir()):
                parts = entry.name.rsplit(".", 2)
                pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else -1
                if pid == os.getpid() or not _pid_alive(pid):
                    shutil.rmtree(entry, ignore_errors=True)
                    report.temp_removed.append(entry.name)
            for entry in sorted(self.conversations.iterdir()):
                if entry.name not in self._done:
                    shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()
                    report.orphans_removed.append(entry.name)
        return report

    def write(self, conv: Conversation) -> ManifestEntry:
        """Write the folder atomically and append its manifest line; return that line.
        Raises AlreadyWritten if the id is already in the manifest."""
        return self.write_with_metadata(conv)[1]

    def write_with_metadata(self, conv: Conversation) -> tuple[ConversationMetadata, ManifestEntry]:
        """`write`, also returning the metadata.json that was written."""
        meta = conversation_metadata(conv)
        files: dict[str, bytes] = {}
        for turn in conv.turns:
            wav, txt = turn_files(turn.turn_id)
            files[wav] = wav_bytes(turn.audio, turn.sample_rate)
            files[txt] = (turn.text + "\n").encode("utf-8")
        files[METADATA_FILE] = meta.to_json().encode("utf-8")
        if conv.samples is not None:
            files[SAMPLES_FILE] = samples_jsonl(conv.samples).encode("utf-8")
        entry = ManifestEntry.from_metadata(meta)
        self.write_files(conv.conversation_id, files, entry)
        return meta, entry

    def write_files(self, conversation_id: str, files: dict[str, bytes], entry: ManifestEntry) -> None:
        """Write a conversation given as file name -> bytes (e.g. streamed from a server), with its
        manifest line, by the same staging, rename and locked append as `write`."""
        final = conversation_dir(self.root, conversation_id)
        staging = self.tmp / f"{conversation_id}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        try:
            staging.mkdir()
            for name, data in files.items():
                if "/" in name or name.startswith("."):
                    raise SynthError(f"{conversation_id}: bad file name {name!r}")
                with open(staging / name, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            _fsync_dir(staging)
            self._commit(staging, final, entry)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def _commit(self, staging: Path, final: Path, entry: ManifestEntry) -> None:
        line = entry.to_line().encode()
        with self.locked():
            self._refresh()
            if entry.conversation_id in self._done:
                raise AlreadyWritten(f"{entry.conversation_id} is already in the manifest")
            if final.exists():  # an orphan of a crashed run: replace it
                shutil.rmtree(final)
            os.rename(staging, final)
            _fsync_dir(self.conversations)
            with open(self.manifest, "ab") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            self._done.add(entry.conversation_id)
            self._offset += len(line)
