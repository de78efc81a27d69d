"""The options a dataset was made with, recorded in `dataset.json` at its root, so that resuming it
with other options (another seed, voices, speech profile, noise...) is refused instead of
silently skipping what is there and adding conversations of another kind.

Only what changes the conversations is recorded (not how fast they are made: batching, workers,
shards). A dataset made before this file existed gets it at its first resume."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConflictError
from ..version import __version__

DATASET_FILE = "dataset.json"


def read_options(root: Path) -> dict[str, Any] | None:
    path = root / DATASET_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    options = data.get("options") if isinstance(data, dict) else None
    return options if isinstance(options, dict) else None


def differences(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """'name: then X, now Y' for every option that differs."""
    out = []
    for key in sorted(set(recorded) | set(now)):
        if recorded.get(key) != now.get(key):
            out.append(f"{key}: then {recorded.get(key)!r}, now {now.get(key)!r}")
    return out


def check_options(root: Path, options: Mapping[str, Any], allow_changes: bool = False) -> None:
    """Refuse (ConfigError naming `resume`) to add to a dataset made with other options, unless
    `allow_changes`; record the options when the dataset has none recorded yet (call it under the
    writer's lock)."""
    recorded = read_options(root)
    if recorded is not None:
        changed = differences(recorded, options)
        if changed and not allow_changes:
            shown = "; ".join(changed[:6]) + (" ..." if len(changed) > 6 else "")
            raise ConflictError(
                "resume",
                f"{root} was made with other options ({shown}): write elsewhere, or add to it anyway "
                "with --resume-with-changes",
            )
        if not changed or allow_changes:
            return
    path = root / DATASET_FILE
    tmp = path.with_name(f".{DATASET_FILE}.{uuid.uuid4().hex[:8]}")
    record = {"synth_version": __version__, "options": dict(options)}
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def plain(value: Any) -> Any:
    """A JSON-ready form of an option value (dataclasses, paths, tuples)."""
    import dataclasses

    spec = getattr(value, "spec", None)
    if callable(spec):  # a distribution written as its spec ("normal:0.4,0.2")
        return spec()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
