"""A finished conversation's integrity record, `integrity.json` in its folder: the size and the
SHA-256 of every file, written at commit as the folder's last file. Readers that pass a
conversation on (the server, `synth merge`, `synth batch --out`, `synth validate`) check it, so
a WAV cut in half, emptied or edited is reported as damage, never passed on; a resumed run checks
the sizes (a `stat` per file: cheap on every resume) and remakes a damaged conversation when
asked (`--repair`).

A conversation written before synth recorded integrity has no record: it is taken as it is."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

INTEGRITY_FILE = "integrity.json"
ALGORITHM = "sha256"
_CHUNK = 1 << 20


def digest(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def record(folder: Path, names: Iterable[str]) -> dict[str, Any]:
    """The integrity record of the named files of a folder."""
    files = {}
    for name in sorted(names):
        path = folder / name
        files[name] = {"size": path.stat().st_size, ALGORITHM: digest(path)}
    return {"algorithm": ALGORITHM, "files": files}


def record_bytes(folder: Path, names: Iterable[str]) -> bytes:
    """The integrity record of the named files as the bytes of integrity.json."""
    return (json.dumps(record(folder, names), indent=1, sort_keys=True) + "\n").encode("utf-8")


def read_record(folder: Path) -> dict[str, Any] | None:
    """The folder's integrity record, None when it has none; a ValueError when it is unreadable."""
    path = folder / INTEGRITY_FILE
    if not path.is_file() or path.is_symlink():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise ValueError(f"{path}: not an integrity record")
    return data


def problems(folder: Path, full: bool = True) -> list[str]:
    """What is wrong with a conversation folder against its integrity record: a file missing, of
    another size, (`full`) with another content, or not listed; [] when it is whole or has no
    record."""
    try:
        data = read_record(folder)
    except (ValueError, UnicodeDecodeError) as exc:
        return [f"{INTEGRITY_FILE} is unreadable ({exc})"]
    if data is None:
        return []
    out = []
    listed = data["files"]
    for name, want in sorted(listed.items()):
        path = folder / name
        try:
            st = os.lstat(path)  # one metadata call per file: cheap on every resume, NFS too
        except FileNotFoundError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):  # missing, or a link: never followed
            out.append(f"{name}: missing")
            continue
        size = st.st_size
        if size != want.get("size"):
            out.append(f"{name}: {size} bytes, {want.get('size')} written")
        elif full and digest(path) != want.get(ALGORITHM):
            out.append(f"{name}: its content changed since it was written ({ALGORITHM} differs)")
    extra = sorted(p.name for p in folder.iterdir() if p.name not in listed and p.name != INTEGRITY_FILE)
    out += [f"{name}: not among the files written" for name in extra]
    return out
