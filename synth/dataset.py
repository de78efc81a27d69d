"""Reading a finished dataset: the manifest, each conversation's metadata and samples. Used by
the training loader, `synth splits`, `synth tokenize` and `synth export`; every error names the
file that is missing or corrupt."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .errors import SynthError
from .ids import InvalidConversationId, conversation_dir
from .writer import MANIFEST


class DatasetError(SynthError):
    """A dataset file that is missing or unreadable."""


@dataclass(frozen=True)
class ConversationRef:
    """A manifest line plus where its folder is."""

    conversation_id: str
    folder: Path
    entry: dict[str, Any]

    @property
    def num_turns(self) -> int:
        return int(self.entry["num_turns"])

    @property
    def total_tokens(self) -> int | None:
        value = self.entry.get("total_tokens")
        return None if value is None else int(value)

    def metadata(self) -> dict[str, Any]:
        return read_json(self.folder / "metadata.json")

    def samples(self) -> list[dict[str, Any]]:
        return read_samples(self.folder / "samples.jsonl")


def read_json(path: Path) -> dict[str, Any]:
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


def iter_manifest(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing (is this a dataset folder?)") from None
    with fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                raise DatasetError(f"{path} line {n}: not valid JSON") from None
            if not isinstance(entry, dict) or "conversation_id" not in entry or "num_turns" not in entry:
                raise DatasetError(f"{path} line {n}: not a manifest entry")
            yield n, entry


def open_dataset(root: Path | str, manifest: Path | str | None = None) -> list[ConversationRef]:
    """The conversations of a dataset in manifest order. `manifest` may be a curriculum split
    (from `synth splits`) whose lines point into the same root."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    path = Path(manifest) if manifest else root / MANIFEST
    refs = []
    for n, entry in iter_manifest(path):
        try:
            folder = conversation_dir(root, entry["conversation_id"])
        except InvalidConversationId as exc:
            raise DatasetError(f"{path} line {n}: {exc}") from None
        if not folder.is_dir():
            raise DatasetError(f"{path} line {n}: folder {folder} is missing")
        refs.append(ConversationRef(entry["conversation_id"], folder, entry))
    return refs
