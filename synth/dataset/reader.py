"""Reading a finished dataset: the manifest, each conversation's metadata and samples (and its
memory probes' samples, probes.jsonl), as the typed records of synth.dataset.records. Used by the
training loader, the server, `synth merge`, `synth splits`, `synth tokenize`, `synth check` and
`synth export`; every error names the file that is missing or corrupt.

One rule for every path read from a dataset: a file a record names (metadata, samples) is a plain
file name inside its own conversation folder (records.is_plain_file_name), and no symbolic link
under the root is followed (`ConversationRef.file` refuses one, naming it)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import DatasetError, InvalidConversationId, RecordError
from ..ids import conversation_dir
from .records import (
    CONVERSATIONS_DIR,
    MANIFEST,
    METADATA_FILE,
    PROBES_FILE,
    SAMPLES_FILE,
    ConversationMetadata,
    ManifestEntry,
    TurnRecord,
    is_plain_file_name,
)


@dataclass(frozen=True)
class ConversationRef:
    """A manifest line plus where its folder is."""

    conversation_id: str
    folder: Path
    entry: ManifestEntry

    @property
    def num_turns(self) -> int:
        return self.entry.num_turns

    def taken_out(self) -> bool:
        """Whether a writer took this conversation out since it was listed (`generate --repair`:
        its line gone from the dataset's manifest, then its folder removed), so that a reader
        that listed it before leaves it out instead of failing on its missing files."""
        if self.folder.exists():
            return False
        manifest = self.folder.parent.parent / MANIFEST
        return all(entry.conversation_id != self.conversation_id for _, entry in iter_manifest(manifest))

    @property
    def num_probes(self) -> int:
        return self.entry.num_probes or 0

    @property
    def total_tokens(self) -> int | None:
        return self.entry.total_tokens

    @property
    def metadata_path(self) -> Path:
        return self.file(METADATA_FILE, "metadata")

    def file(self, name: str, field: str = "file") -> Path:
        """The path of a file of this conversation, by the one rule: a plain file name inside its
        folder, and not a symbolic link (a DatasetError names the file and field otherwise)."""
        if not is_plain_file_name(name):
            raise DatasetError(
                f"{self.folder / METADATA_FILE}: {field} {str(name)[:80]!r} is not a plain file name "
                "inside the conversation's folder"
            )
        if self.folder.is_symlink():
            raise DatasetError(f"{self.folder}: a symbolic link; synth does not follow links in a dataset")
        path = self.folder / name
        if path.is_symlink():
            raise DatasetError(f"{path}: a symbolic link ({field}); synth does not follow links in a dataset")
        return path

    def metadata(self) -> ConversationMetadata:
        path = self.metadata_path
        try:
            return ConversationMetadata.from_dict(read_json(path), str(path))
        except RecordError as exc:
            raise DatasetError(str(exc)) from None

    def turns(self, meta: ConversationMetadata | None = None) -> list[TurnRecord]:
        """The turns with `text` and `speaker_id` filled in (from the transcript files and the
        speakers list where a dataset made elsewhere lacks them)."""
        meta = meta or self.metadata()
        out = []
        for t in meta.turns:
            text = t.text
            if text is None:
                path = self.file(t.transcript_file, f"turn {t.turn_id} transcript_file")
                try:
                    text = path.read_text(encoding="utf-8").strip()
                except FileNotFoundError:
                    raise DatasetError(f"{path}: missing") from None
            try:
                speaker_id = meta.speaker_id(t)
            except ValueError:
                raise DatasetError(
                    f"{self.metadata_path}: turn {t.turn_id}: speaker {t.speaker!r} is not in speakers"
                ) from None
            out.append(dataclasses.replace(t, text=text, speaker_id=speaker_id))
        return out

    def samples(self) -> list[dict[str, Any]]:
        """samples.jsonl: the turns' samples, then, where the dataset was made with `--probes
        in-training`, its memory probes' (target kind `answer`)."""
        return self._checked(SAMPLES_FILE, read_samples(self.file(SAMPLES_FILE, "samples")))

    def probe_samples(self) -> list[dict[str, Any]] | None:
        """probes.jsonl: one sample per memory probe, in the order of metadata `probes`; None
        where the conversation has no such file (no probes, or made before probes)."""
        path = self.file(PROBES_FILE, "probe samples")
        if not path.exists():
            return None
        return self._checked(PROBES_FILE, read_samples(path))

    def _checked(self, name: str, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`samples` of file `name`, each audio_file in it a plain file name."""
        for n, sample in enumerate(samples, start=1):
            audio = sample.get("audio_file") if isinstance(sample, dict) else None
            if audio is not None and not is_plain_file_name(audio):
                raise DatasetError(
                    f"{self.folder / name} line {n}: audio_file {str(audio)[:80]!r} is not a plain "
                    "file name inside the conversation's folder"
                )
        return samples


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a dataset file; a DatasetError naming the file when it is missing, not
    JSON or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object")
    return data


def read_samples(path: Path) -> list[dict[str, Any]]:
    """The records of a samples.jsonl file; a DatasetError naming the file (and the line) when it is
    missing or a line is not JSON."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing (run `synth tokenize` on the dataset)") from None
    out = []
    for n, line in enumerate(lines, start=1):
        try:
            out.append(json.loads(line))
        except ValueError:
            raise DatasetError(f"{path} line {n}: not valid JSON") from None
    return out


def iter_manifest(path: Path) -> Iterator[tuple[int, ManifestEntry]]:
    """(line number, entry) of every line of a manifest (or a split manifest)."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing (is this a dataset folder?)") from None
    with fh:
        yield from _entries(fh, path)


def _entries(fh: BinaryIO, path: Path) -> Iterator[tuple[int, ManifestEntry]]:
    for n, line in enumerate(fh, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            raise DatasetError(f"{path} line {n}: not valid JSON") from None
        try:
            yield n, ManifestEntry.from_dict(obj, f"{path} line {n}")
        except RecordError as exc:
            raise DatasetError(f"{exc} (not a manifest entry)") from None


def open_dataset(root: Path | str, manifest: Path | str | None = None) -> list[ConversationRef]:
    """The conversations of a dataset in manifest order. `manifest` may be a curriculum split
    (from `synth splits`) whose lines point into the same root.

    Read beside writers (docs/reliability.md, "Tools on one dataset"): a listed folder found
    missing after the manifest was replaced (a `generate --repair` took that conversation out
    and removed its folder while this read the old manifest) is not an error; the new manifest
    is read instead."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    path = Path(manifest) if manifest else root / MANIFEST
    for _ in range(READS - 1):
        refs = _listed(root, path, again=True)
        if refs is not None:
            return refs
    refs = _listed(root, path, again=False)
    assert refs is not None
    return refs


READS = 5  # manifest reads when writers keep replacing it under a reader


def _listed(root: Path, path: Path, again: bool) -> list[ConversationRef] | None:
    """The manifest's conversations; with `again`, None where a listed folder is missing and the
    manifest is no longer the file this read (read it again)."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing (is this a dataset folder?)") from None
    with fh:
        read = os.fstat(fh.fileno()).st_ino
        refs = []
        for n, entry in _entries(fh, path):
            link = root / CONVERSATIONS_DIR / entry.conversation_id
            if link.is_symlink():
                raise DatasetError(f"{path} line {n}: {link} is a symbolic link; synth does not follow links")
            try:
                folder = conversation_dir(root, entry.conversation_id)
            except InvalidConversationId as exc:
                raise DatasetError(f"{path} line {n}: {exc}") from None
            if not folder.is_dir():
                if again and _inode(path) != read:
                    return None
                raise DatasetError(f"{path} line {n}: folder {folder} is missing")
            refs.append(ConversationRef(entry.conversation_id, folder, entry))
    return refs


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None
