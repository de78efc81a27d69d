"""The dataset writer: a conversation becomes visible all at once or not at all.

Each conversation is written into `<out>/.tmp/`, fsynced, then renamed into
`<out>/conversations/<id>`; its manifest line is appended after the rename. Rename and append
happen under one file lock, shared by every process writing to the same root, so a crash leaves
at worst a temporary folder or a renamed folder without its line, both removed by `recover()`,
never a half-written conversation or a duplicated line.

Faults: an append that fails (a full disk) is undone at once (the manifest cut back to its
previous length, the folder taken back out); a torn line left anyway (a kill during the append,
an undo that failed too) is repaired under the lock wherever it is, by whichever writer meets it
first. Staging folders are named with the host, process and a random token, and each holds an
flock on its `.lock` while it is written, so a writer starting on a shared volume (replicas that
are all PID 1 in their containers) removes only staging folders whose owner is gone.

Every writer holds the dataset's run lock shared for as long as it lives (synth.dataset.run_lock),
and a tool that rewrites finished conversations holds it alone (`DatasetWriter.rewriting`)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import soundfile as sf

from ..audio import wav_bytes
from ..domain import Conversation, SpokenProbe, SynthesizedTurn, released, released_probe
from ..errors import (
    AlreadyWritten,
    Claimed,
    ConflictError,
    Damaged,
    DatasetBusy,
    SynthError,
    WriteFailed,
)
from ..ids import conversation_dir
from .files import fsync_dir, left_over, remove_path, replace_bytes, write_durable
from .fingerprint import (
    DATASET_FILE,
    read_options,
    records_samples,
    sample_differences,
    sample_options,
    tokens_options,
)
from .integrity import INTEGRITY_FILE, record_bytes
from .integrity import problems as integrity_problems
from .journal import JOURNAL, Rewrite, hidden_new_files, roll_forward
from .journal import REWRITE as REWRITE_MARKER
from .manifest_repair import entry_id, repair_manifest_lines
from .metadata import conversation_metadata
from .mixdown import FULLBAND, ConversationAudioConfig, write_conversation_audio
from .records import (
    CONVERSATION_AUDIO,
    MANIFEST,
    METADATA_FILE,
    PROBES_FILE,
    SAMPLES_FILE,
    ConversationMetadata,
    ManifestEntry,
    event_file,
    is_plain_file_name,
    probe_answer_file,
    probe_files,
    samples_jsonl,
    turn_files,
)
from .run_lock import (  # noqa: F401  (READ, REWRITE, holders, using: re-exported for old imports)
    LOCK,
    READ,
    REWRITE,
    RUN_LOCK,
    RUNS,
    WRITE,
    Holder,
    Session,
    holders,
    is_held,
    using,
)

TMP = ".tmp"
STAGING_LOCK = ".lock"  # <staging folder name>.lock beside it in .tmp/
CLAIM = ".claim"  # <conversation id>.claim in .tmp/: held by the writer making that conversation
# A staging folder without its lock file was left by a writer that did not lock (an older synth);
# it is removed once it is old.
STALE_UNLOCKED_SEC = 600.0


@dataclass
class Recovery:
    """What `recover()` cleaned up, for the run summary."""

    temp_removed: list[str] = field(default_factory=list)
    orphans_removed: list[str] = field(default_factory=list)
    manifest_tail_truncated: bool = False
    torn_lines_removed: list[int] = field(default_factory=list)  # manifest line numbers
    switched: int = 0  # files of an interrupted rewrite switched in


def _lock_of(staging: Path) -> Path:
    return staging.with_name(staging.name + STAGING_LOCK)


def _abandoned(staging: Path) -> bool:
    """True when no live writer owns a staging folder: its lock file (beside it, taken before the
    folder is made and removed after it is gone) can be locked, or is missing and the folder old."""
    if not _lock_of(staging).exists():
        try:
            return time.time() - staging.stat().st_mtime > STALE_UNLOCKED_SEC
        except FileNotFoundError:
            return False
    return left_over(_lock_of(staging))


def _older(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except FileNotFoundError:
        return False


_NO_SETTINGS = object()  # dataset.json records no sample settings: nothing to compare


def recover_dataset(root: Path | str) -> str:
    """What every writer does at start (`DatasetWriter.recover`), and the hidden files of a
    rewrite that no marker names, for `synth validate --recover`; says what was done ('' for
    nothing). A folder without a manifest is left alone (validate says what it is)."""
    root = Path(root)
    if not (root / MANIFEST).is_file():
        return ""
    switching, rewrite = (root / JOURNAL).exists(), (root / REWRITE_MARKER).exists()
    writer = DatasetWriter(root)
    try:
        report = writer.recover()
        with writer.locked():  # no rewrite runs now (it would hold the dataset alone)
            stray = hidden_new_files(root)
            if stray:
                roll_forward(root, sweep=True)
    finally:
        writer.close()
    done = []
    if switching:
        done.append(f"finished an interrupted rewrite ({report.switched} file(s) switched in: the new one)")
    elif rewrite:
        done.append("undid an interrupted rewrite (its hidden new files removed; the dataset is the old one)")
    if stray:
        done.append(f"removed {len(stray)} hidden file(s) left by a rewrite")
    if report.temp_removed:
        done.append(f"removed {len(report.temp_removed)} unfinished conversation(s) from {TMP}")
    if report.orphans_removed:
        done.append(f"removed {len(report.orphans_removed)} folder(s) not in the manifest")
    if report.torn_lines_removed or report.manifest_tail_truncated:
        done.append(f"repaired the manifest (torn lines {report.torn_lines_removed or 'at its end'})")
    return "; ".join(done)


class DatasetWriter:
    """Writes conversations into a dataset folder atomically (staging folder, then rename, then
    one manifest line). `conversation_audio`: also mix each conversation's conversation.wav."""

    def __init__(self, root: Path | str, conversation_audio: ConversationAudioConfig | None = None):
        self.root = Path(root)
        self.conversation_audio = conversation_audio
        self.conversations = self.root / "conversations"
        self.tmp = self.root / TMP
        self.manifest = self.root / MANIFEST
        for d in (self.root, self.conversations, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        self._mutex = threading.Lock()
        self._done: set[str] = set()
        self._offset = 0
        self._inode: int | None = None
        self._tail = b""  # the manifest's line that ends at _offset, as last read
        # unique across hosts and PID namespaces (every container's server is PID 1)
        self._token = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # turns' WAVs are encoded and written here, overlapping the next turn's synthesis
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth-writer")
        self._session: Session | None = None
        self._starting = threading.Lock()
        self._settings: tuple[Any, Any] = (None, _NO_SETTINGS)  # dataset.json's (stat, sample settings)

    def start(self) -> None:
        """Hold the dataset as a writer (a shared Session) for as long as this writer lives or
        until `close()`: DatasetBusy, naming the process, while a rewrite holds it. Every method
        that changes the dataset calls it first."""
        with self._starting:
            if self._session is None:
                self._session = Session(self.root, WRITE).acquire()

    def close(self) -> None:
        """Let go of the dataset (the writer's session); a later write takes it again."""
        with self._starting:
            if self._session is not None:
                self._session.release()
                self._session = None

    @contextlib.contextmanager
    def exclusive(
        self, wait: bool = False, on_wait: Callable[[list[Holder]], None] | None = None
    ) -> Iterator[Session]:
        """Hold the dataset alone for a block (a rewrite): DatasetBusy naming the processes using
        it, or with `wait` wait for them (`on_wait` is told whom); no other tool starts meanwhile."""
        with self._starting:
            if self._session is not None:
                raise DatasetBusy(f"{self.root}: this writer already uses the dataset; close it first")
            self._session = Session(self.root, REWRITE).acquire(wait, on_wait)
        try:
            yield self._session
        finally:
            self.close()

    @contextlib.contextmanager
    def rewriting(
        self,
        options: dict[str, Any] | None = None,
        wait: bool = False,
        on_wait: Callable[[list[Holder]], None] | None = None,
    ) -> Iterator[Rewrite]:
        """Rewrite finished conversations as one step (synth.dataset.journal.Rewrite), holding the
        dataset alone: an interrupted rewrite is finished or undone first; what the block writes
        is switched in when it ends, nothing of it when it raises. `options`: what the rewrite
        makes of the dataset (recorded in its marker, for `synth validate` to say)."""
        with self.exclusive(wait, on_wait) as session:
            self.recover()
            rewrite = Rewrite(self.root, session.info(options))
            try:
                yield rewrite
            except BaseException:
                rewrite.abandon()
                raise
            with self.locked():
                rewrite.switch()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across threads (mutex) and processes (flock on <out>/.lock)."""
        if self._session is None:
            self.start()
        with self._mutex, open(self.root / LOCK, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _refresh(self, repaired: bool = False) -> None:
        """Read manifest lines appended since the last look (by any process), repairing torn
        lines first if there are any. Caller holds the lock, so no append is in progress: an
        unterminated tail or an unreadable line is a failed or killed write.

        The manifest is read on from where the last look ended only while it is the same file:
        the same inode, at least as long, and the line that ends there still the one read there
        (an inode number is reused once a replaced manifest is gone, and the workers' parent and
        `generate --repair` replace it whole: read on from the middle of a line, the old code
        took that line for a torn one that no repair could mend, and recursed until Python
        stopped it). Anything else is read anew."""
        try:
            st = os.stat(self.manifest)
        except FileNotFoundError:
            self._forget(None)
            return
        with open(self.manifest, "rb") as fh:
            if st.st_ino != self._inode or st.st_size < self._offset:  # replaced or cut
                self._forget(st.st_ino)
            elif self._offset:
                fh.seek(self._offset - len(self._tail))
                if fh.read(len(self._tail)) != self._tail:  # another file under a reused inode
                    self._forget(st.st_ino)
            fh.seek(self._offset)
            data = fh.read()
        ids = [entry_id(line) for line in data.splitlines() if line.strip()]
        if (data and not data.endswith(b"\n")) or None in ids:  # a torn line: repair, read anew
            if not repaired:
                self._repair()
                self._forget(None)
                return self._refresh(repaired=True)
            data = data[: data.rfind(b"\n") + 1]  # what a repair keeps but names no id: skipped
        self._done.update(i for i in ids if i is not None)
        self._offset += len(data)
        seen = self._tail + data
        self._tail = seen[seen.rfind(b"\n", 0, len(seen) - 1) + 1 :]  # the last line read

    def _forget(self, inode: int | None) -> None:
        """Read the manifest from its start at the next look."""
        self._done, self._offset, self._inode, self._tail = set(), 0, inode, b""

    def _repair(self) -> Recovery:
        """Rewrite the manifest without its torn lines (atomically). Caller holds the lock."""
        report = Recovery()
        data = self.manifest.read_bytes()
        repaired, report.torn_lines_removed, report.manifest_tail_truncated = repair_manifest_lines(data)
        if repaired != data:
            replace_bytes(self.manifest, repaired)
            self._forget(None)
        return report

    def probe(self) -> None:
        """Raise OSError unless a file can be written and fsynced in this dataset now."""
        path = self.tmp / f".probe.{self._token}"
        try:
            write_durable(path, b"\0" * 4096)
        finally:
            path.unlink(missing_ok=True)

    def done_ids(self) -> set[str]:
        with self.locked():
            self._refresh()
            return set(self._done)

    def is_done(self, conversation_id: str) -> bool:
        """Whether the manifest lists it now (lines appended by any process since the last look
        are read first)."""
        with self.locked():
            self._refresh()
            return conversation_id in self._done

    def damaged(self, full: bool = False) -> dict[str, list[str]]:
        """The finished conversations whose files are not what was written, with what is wrong
        (their integrity records: sizes only unless `full`, so a resume can afford it)."""
        out = {}
        for cid in sorted(self.done_ids()):
            folder = self.conversations / cid
            if folder.is_symlink() or not folder.is_dir():
                out[cid] = ["the folder is missing"]
                continue
            bad = integrity_problems(folder, full=full)
            if bad:
                out[cid] = bad
        return out

    def remove(self, conversation_ids: set[str]) -> None:
        """Take conversations out of the dataset (their manifest lines, then their folders), so
        that the next run makes them again: the manifest is replaced at once, under the lock."""
        with self.locked():
            self._refresh()
            kept = [
                line
                for line in self.manifest.read_bytes().splitlines(keepends=True)
                if entry_id(line) not in conversation_ids
            ]
            replace_bytes(self.manifest, b"".join(kept))
            self._forget(None)
            self._refresh()
            for cid in conversation_ids:
                remove_path(self.conversations / cid)

    def recover(self) -> Recovery:
        """Clean up after an interrupted run: repair torn manifest lines, remove staging folders
        whose writer is gone, and remove conversation folders that have no manifest line
        (renamed into place, then killed before the append): they are synthesized again."""
        with self.locked():
            report = self._repair() if self.manifest.exists() else Recovery()
            report.switched = roll_forward(self.root)  # a rewrite (synth tokenize) interrupted
            if self._session is not None:  # finished when the dataset was taken
                report.switched, self._session.switched = report.switched + self._session.switched, 0
            if not self.manifest.exists():  # a dataset with nothing in it yet is still a dataset
                self.manifest.touch()
                fsync_dir(self.root)
            self._forget(None)
            self._refresh()
            for entry in sorted(self.tmp.iterdir()):
                if entry.is_dir() and _abandoned(entry):
                    shutil.rmtree(entry, ignore_errors=True)
                    _lock_of(entry).unlink(missing_ok=True)
                    report.temp_removed.append(entry.name)
                elif entry.name.endswith((STAGING_LOCK, CLAIM)) and left_over(entry):
                    entry.unlink(missing_ok=True)  # a lock or claim of a process that is gone
            if (self.root / RUNS).is_dir():
                for entry in (self.root / RUNS).iterdir():
                    if entry.name.endswith(".new") and not _older(entry, 60.0):
                        continue  # a record being written (opened, not yet locked)
                    if left_over(entry):  # the record of a process that is gone
                        entry.unlink(missing_ok=True)
            for entry in sorted(self.conversations.iterdir()):
                if entry.name not in self._done:
                    remove_path(entry)
                    report.orphans_removed.append(entry.name)
        return report

    def write(self, conv: Conversation) -> ManifestEntry:
        """Write the folder atomically and append its manifest line; return that line.
        Raises AlreadyWritten if the id is already in the manifest."""
        return self.write_with_metadata(conv)[1]

    def write_with_metadata(self, conv: Conversation) -> tuple[ConversationMetadata, ManifestEntry]:
        """`write`, also returning the metadata.json that was written."""
        with self.staged(conv.conversation_id) as staging:
            for turn in conv.turns:
                staging.add_turn(turn)
            return staging.commit(conv)

    def write_files(self, conversation_id: str, files: dict[str, bytes], entry: ManifestEntry) -> None:
        """Write a conversation given as file name -> bytes (e.g. streamed from a server), with its
        manifest line, by the same staging, rename and locked append as `write`."""
        with self.staged(conversation_id) as staging:
            for name, data in files.items():
                staging.add(name, data)
            staging.finish(entry)

    @contextlib.contextmanager
    def staged(self, conversation_id: str) -> Iterator[Staging]:
        """A staging folder for one conversation, owned (flock) while it is written; whatever is
        not committed when the block ends (an error, a cancelled call) is removed."""
        self.start()
        final = conversation_dir(self.root, conversation_id)
        staging = self.tmp / f"{conversation_id}.{self._token}.{uuid.uuid4().hex[:6]}"
        claim = self._claim(conversation_id)
        try:
            owner = open(_lock_of(staging), "wb")  # held until the folder is committed or removed
            try:
                fcntl.flock(owner, fcntl.LOCK_EX)
                if self.is_done(conversation_id):  # finished by another run since the claim
                    raise AlreadyWritten(f"{conversation_id} is already in the manifest")
                staging.mkdir()
                current = Staging(self, conversation_id, staging, final)
                try:
                    yield current
                finally:
                    current.discard()
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)
                _lock_of(staging).unlink(missing_ok=True)
                owner.close()
        finally:
            self._unclaim(claim)

    def _claim(self, conversation_id: str) -> Any:
        """Claim a conversation across processes (a non-blocking flock on .tmp/<id>.claim), so
        that two runs on one folder share the work: Claimed when another live writer has it."""
        path = self.tmp / f"{conversation_id}{CLAIM}"
        fh = open(path, "ab")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise Claimed(f"{conversation_id} is being made by another run on this folder") from None
        return fh

    def _unclaim(self, fh: Any) -> None:
        with contextlib.suppress(OSError):
            os.unlink(fh.name)
        fh.close()

    def _same_settings(self, staging: Path, conversation_id: str) -> None:
        """Refuse a conversation whose samples were made otherwise than the dataset's (dataset.json's
        sample settings, where it records them): one set per dataset, whichever tool writes it
        (serve, batch --out, convert; generate and merge check before they start). Caller holds
        the lock."""
        try:
            st = os.stat(self.root / DATASET_FILE)
        except FileNotFoundError:
            return
        if self._settings[0] != (st.st_ino, st.st_mtime_ns, st.st_size):
            options = read_options(self.root)
            recorded = options is not None and records_samples(options)
            expected = sample_options(options) if options is not None and recorded else _NO_SETTINGS
            self._settings = ((st.st_ino, st.st_mtime_ns, st.st_size), expected)
        expected = self._settings[1]
        if expected is _NO_SETTINGS:
            return
        try:
            meta = json.loads((staging / METADATA_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            return  # the copy's own checks (integrity) speak for it
        differ = sample_differences(
            expected, tokens_options(meta.get("tokens") if isinstance(meta, dict) else None)
        )
        if differ:
            raise ConflictError(
                "samples",
                f"{conversation_id}: its samples are made with {', '.join(differ)}, and {self.root} holds "
                "one set of sample settings (dataset.json): nothing of it was kept",
            )

    def submit_write(self, write: Callable[[], None]) -> Future[None]:
        """Run a file write on the writer's I/O thread (a turn's WAV is encoded and written there,
        overlapping the next turn's synthesis)."""
        return self._io.submit(write)

    def commit_folder(self, staging: Path, final: Path, entry: ManifestEntry) -> None:
        """Make a sealed staging folder visible as `final` and append its manifest line, under the
        lock (AlreadyWritten if another run finished it first; on a failed append nothing of it
        is kept)."""
        line = entry.to_line().encode()
        with self.locked():
            self._refresh()
            if entry.conversation_id in self._done:
                raise AlreadyWritten(f"{entry.conversation_id} is already in the manifest")
            self._same_settings(staging, entry.conversation_id)
            remove_path(final)  # an orphan of a crashed run, or a link someone put there: replace it
            os.rename(staging, final)
            fsync_dir(self.conversations)
            size = self.manifest.stat().st_size if self.manifest.exists() else 0
            try:
                with open(self.manifest, "ab") as fh:
                    fh.write(line)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                self._undo_append(size, final, staging)
                raise WriteFailed(
                    f"{entry.conversation_id}: cannot append to {self.manifest} "
                    f"({exc.strerror or exc}); nothing of it was kept"
                ) from exc
            self._done.add(entry.conversation_id)  # its line is read again at the next look

    def _undo_append(self, size: int, final: Path, staging: Path) -> None:
        """Cut the manifest back to `size` and take the folder back out (into staging, which the
        caller removes). If even that fails, the torn line is repaired by the next writer."""
        with contextlib.suppress(OSError):
            with open(self.manifest, "r+b") as fh:
                fh.truncate(size)
                os.fsync(fh.fileno())
        with contextlib.suppress(OSError):
            os.rename(final, staging)


class Staging:
    """A conversation being written into its staging folder: turns are added as they are
    produced (their audio is written and let go, so a long conversation needs the memory of a few
    turns), then `commit` writes metadata.json and samples.jsonl and makes the folder visible.
    WAVs are encoded and written on the writer's I/O thread, overlapping the next turn's
    synthesis; at most MAX_PENDING_WRITES wait at once."""

    MAX_PENDING_WRITES = 4

    def __init__(self, writer: DatasetWriter, conversation_id: str, folder: Path, final: Path):
        self.writer, self.conversation_id, self.folder, self.final = writer, conversation_id, folder, final
        self._pending: deque[Future[None]] = deque()

    def _wait(self, keep: int = 0) -> None:
        """Wait for pending writes until at most `keep` remain; raise the first error."""
        while len(self._pending) > keep:
            self._pending.popleft().result()

    def discard(self) -> None:
        """Let pending writes finish (their errors no longer matter) before the folder goes."""
        for fut in self._pending:
            fut.exception()
        self._pending.clear()

    def add(self, name: str, data: bytes) -> None:
        if not is_plain_file_name(name):
            raise SynthError(f"{self.conversation_id}: bad file name {name!r}")
        write_durable(self.folder / name, data)

    def add_fullband(self, name: str, samples: Any) -> None:
        """Stage a turn's or event's full-band audio for the conversation mix (removed at commit)."""
        rate = self.writer.conversation_audio.sample_rate if self.writer.conversation_audio else None
        if rate is None or "/" in name or name.startswith("."):
            return
        folder = self.folder / FULLBAND
        folder.mkdir(exist_ok=True)
        with open(folder / name, "wb") as fh:
            fh.write(wav_bytes(samples, rate))

    @overload
    def add_turn(self, turn: SynthesizedTurn) -> SynthesizedTurn: ...
    @overload
    def add_turn(self, turn: SpokenProbe) -> SpokenProbe: ...

    def add_turn(self, turn: SynthesizedTurn | SpokenProbe) -> SynthesizedTurn | SpokenProbe:
        """Write a turn's WAV and transcript (and its full-band audio, staged for the mix), or a
        memory probe's; return it without its audio in memory."""
        if isinstance(turn, SpokenProbe):
            return self.add_probe(turn)
        wav, txt = turn_files(turn.turn_id)
        audio, rate, full = turn.audio, turn.sample_rate, turn.fullband
        text = (turn.text + "\n").encode("utf-8")

        def write() -> None:
            self.add(wav, wav_bytes(audio, rate))
            self.add(txt, text)
            if full is not None:
                self.add_fullband(wav, full)

        if turn.stored_samples is not None:
            raise SynthError(f"{self.conversation_id}: turn {turn.turn_id} was already written")
        self._pending.append(self.writer.submit_write(write))
        self._wait(keep=self.MAX_PENDING_WRITES)
        return released(turn)

    def add_probe(self, probe: SpokenProbe) -> SpokenProbe:
        """Write a memory probe's question (WAV and transcript) and its answer's audio, if spoken;
        return it without its audio in memory."""
        wav, txt = probe_files(probe.index)
        audio, answer, rate = probe.audio, probe.answer_audio, probe.sample_rate
        text = (probe.probe.question + "\n").encode("utf-8")

        def write() -> None:
            self.add(wav, wav_bytes(audio, rate))
            self.add(txt, text)
            if answer is not None:
                self.add(probe_answer_file(probe.index), wav_bytes(answer, rate))

        if probe.stored_samples is not None:
            raise SynthError(f"{self.conversation_id}: probe {probe.index} was already written")
        self._pending.append(self.writer.submit_write(write))
        self._wait(keep=self.MAX_PENDING_WRITES)
        return released_probe(probe)

    def commit(self, conv: Conversation) -> tuple[ConversationMetadata, ManifestEntry]:
        """Write the conversation's records (its turns were added) and make it visible."""
        self._wait()
        meta = conversation_metadata(conv)
        for i, event in enumerate(conv.events):
            self.add(event_file(i), wav_bytes(event.audio, event.sample_rate))
            if event.fullband is not None:
                self.add_fullband(event_file(i), event.fullband)
        if self.writer.conversation_audio is not None:
            try:
                meta = write_conversation_audio(self.folder, meta, self.writer.conversation_audio)
            except sf.LibsndfileError as exc:  # "System error." is how libsndfile says ENOSPC
                raise WriteFailed(
                    f"{self.conversation_id}: cannot write {CONVERSATION_AUDIO} ({exc}; a full or "
                    "read-only disk?); nothing of the conversation was kept"
                ) from exc
        shutil.rmtree(self.folder / FULLBAND, ignore_errors=True)
        self.add(METADATA_FILE, meta.to_json().encode("utf-8"))
        if conv.samples is not None:
            self.add(SAMPLES_FILE, samples_jsonl(conv.samples).encode("utf-8"))
        if conv.probe_samples:
            self.add(PROBES_FILE, samples_jsonl(conv.probe_samples).encode("utf-8"))
        entry = ManifestEntry.from_metadata(meta)
        self.finish(entry)
        return meta, entry

    def finish(self, entry: ManifestEntry) -> None:
        """Seal the folder with its integrity record (or, for a copy that came with one: check
        that every file is what was written) and make it visible."""
        if (self.folder / INTEGRITY_FILE).is_file():
            bad = integrity_problems(self.folder)
            if bad:
                raise Damaged(f"{self.conversation_id}: the copy is damaged: {'; '.join(bad[:3])}")
        else:
            names = [p.name for p in self.folder.iterdir() if p.is_file()]
            self.add(INTEGRITY_FILE, record_bytes(self.folder, names))
        fsync_dir(self.folder)
        self.writer.commit_folder(self.folder, self.final, entry)
