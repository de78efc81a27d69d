"""Damage: files that are not what was written (each conversation's integrity record, read in
full), symbolic links (synth never makes one in a dataset), conversations without an integrity
record; and the command that makes damaged conversations again."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
from pathlib import Path
from typing import Any

from ...dataset.integrity import INTEGRITY_FILE
from ...dataset.integrity import problems as integrity_problems
from ...dataset.records import METADATA_FILE
from .conversation import rewrite_file
from .problems import Place, Problem


def check_integrity(folder: Path) -> list[Problem]:
    """The conversation's files against its integrity record (a rewrite's hidden new files aside)."""
    found = [p for p in integrity_problems(folder, full=True) if not rewrite_file(p.split(":")[0])]
    return [
        Problem(
            f"conversations/{folder.name}: damaged: {problem}", "error", folder.name, problem.split(":")[0]
        )
        for problem in found
    ]


def check_unsealed(folders: list[Path]) -> list[Problem]:
    """Conversations without an integrity record (a warning: made before synth wrote one)."""
    unsealed = sum(not (folder / INTEGRITY_FILE).exists() for folder in folders)
    if not unsealed:
        return []
    return [
        Problem(
            f"{unsealed} conversation(s) without an integrity record (made before synth wrote one): their "
            "files cannot be checked against what was written",
            "warning",
        )
    ]


def check_links(root: Path) -> list[Problem]:
    """Every symbolic link under the dataset root (links are not followed while looking)."""
    links = []
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(base) / name
            if path.is_symlink():
                links.append(path)
    return [
        Place(str(link.relative_to(root))).error(
            "a symbolic link (synth never makes one in a dataset, and its readers refuse to follow one)"
        )
        for link in sorted(links)
    ]


def repair_advice(root: Path, shown: str, damaged: dict[str, dict[str, Any] | None]) -> Problem:
    """`synth generate --dialogs SOURCE --out DATASET --repair`, with the source the damaged
    conversations were made from (their metadata's, or another conversation's); `damaged`: their
    metadata (None where it cannot be read) by id, `shown`: the dataset as the user named it."""
    sources = {s for s in map(_source_of, damaged.values()) if s is not None}
    if not sources:
        for folder in sorted((root / "conversations").iterdir())[:20]:
            with contextlib.suppress(OSError, ValueError, UnicodeDecodeError):
                found = _source_of(json.loads((folder / METADATA_FILE).read_text(encoding="utf-8")))
                if found is not None:
                    sources.add(found)
                    break
    source = shlex.quote(next(iter(sources))) if len(sources) == 1 else "SOURCE"
    names = ", ".join(sorted(damaged)[:5]) + (" ..." if len(damaged) > 5 else "")
    said = "" if len(sources) == 1 else " (SOURCE: the dialogs the dataset was made from)"
    return Problem(
        f"{len(damaged)} damaged conversation(s) ({names}): `synth generate --dialogs {source} --out "
        f"{shown} --repair` makes them again{said}, with the options dataset.json records",
        "advice",
    )


def _source_of(meta: Any) -> str | None:
    source = meta.get("source") if isinstance(meta, dict) else None
    if not isinstance(source, dict):
        return None
    path = source.get("path") or source.get("dataset")
    return path if isinstance(path, str) and path else None
