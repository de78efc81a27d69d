"""Dialog sources. Each yields `Dialog` or `DialogError` lazily, so a bad record never stops the
iteration and a million dialogs are never held in memory."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

from ...domain import Dialog
from ...errors import ConfigError, DialogError
from ..build import DEFAULT_LIMITS, DialogLimits
from .chat import ChatFields, jsonl_is_chat, read_chat_jsonl
from .coherent import COHERENT_FORMATS, CoherentConfig
from .dailydialog import HF_DATASET_ID, read_dailydialog_text, read_huggingface
from .jsonl import read_jsonl
from .locomo import looks_like_locomo, read_locomo

FORMATS = ("auto", "jsonl", "chat", "dailydialog-txt", "hf", *COHERENT_FORMATS)

__all__ = [
    "COHERENT_FORMATS",
    "FORMATS",
    "ChatFields",
    "CoherentConfig",
    "open_dialogs",
    "read_chat_jsonl",
    "read_jsonl",
    "read_dailydialog_text",
    "read_huggingface",
]


def detect_format(spec: str) -> str:
    if spec == "dailydialog" or spec.startswith("hf:"):
        return "hf"
    path = Path(spec)
    if not path.exists():
        raise ConfigError(
            "dialogs",
            "no such file; give a .jsonl file, DailyDialog's "
            "dialogues_*.txt, a parquet file or folder, 'dailydialog' or 'hf:<id>'",
            spec,
        )
    if path.is_dir() or path.suffix == ".parquet":
        return "hf"
    if path.suffix == ".txt":
        return "dailydialog-txt"
    if path.suffix == ".json":
        return _json_layout(path)
    return "jsonl"


def _json_layout(path: Path) -> str:
    """The coherent layout of a .json file, by its first record."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError("dialogs", f"cannot read as JSON: {exc}", str(path)) from None
    first = data[0] if isinstance(data, list) and data else data
    if looks_like_locomo(first):
        return "locomo"
    raise ConfigError(
        "dialogs",
        "a .json file is read as a LoCoMo or REALTALK conversation, and this one is not "
        "(give --format, or JSONL for one dialog a line)",
        str(path),
    )


def count_records(spec: str, fmt: str = "auto") -> int | None:
    """How many records a local file source holds (its non-empty lines), for a progress bar's
    total; None for Hugging Face sources (streamed, not counted ahead)."""
    if fmt == "auto":
        fmt = detect_format(spec)
    if fmt not in ("jsonl", "dailydialog-txt"):
        return None
    with open(spec, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def open_dialogs(
    spec: str,
    fmt: str = "auto",
    split: str | None = None,
    limit: int | None = None,
    limits: DialogLimits = DEFAULT_LIMITS,
    chat: ChatFields | None = None,
    coherent: CoherentConfig | None = None,
) -> Iterator[Dialog | DialogError]:
    """Open a dialog source by what the user typed: a path, 'dailydialog' (the hub dataset) or
    'hf:<dataset id>'. `limit` bounds the number of records read (good or bad). Chat-format
    records (messages, ShareGPT, or the layout `chat` maps) are recognized in JSONL files and in
    parquet / Hugging Face rows. A local file is recorded by its absolute path (metadata
    `source.path`), so a dataset says where it came from whatever folder it was made in."""
    if fmt not in FORMATS:
        raise ConfigError("format", f"choose one of {', '.join(FORMATS)}", fmt)
    chat = chat or ChatFields()
    if fmt == "auto":
        fmt = detect_format(spec)
        if fmt == "jsonl" and (chat.is_mapped or jsonl_is_chat(Path(spec))):
            fmt = "chat"
    local = Path(spec).resolve()
    if fmt in COHERENT_FORMATS:
        return itertools.islice(
            _coherent(local, spec, fmt, split, limits, coherent or CoherentConfig()), limit
        )
    if fmt == "chat" and local.suffix == ".jsonl":
        return itertools.islice(read_chat_jsonl(local, chat, limits), limit)
    if fmt == "jsonl":
        return itertools.islice(read_jsonl(local, limits), limit)
    if fmt == "dailydialog-txt":
        return read_dailydialog_text(local, split, limit, limits)
    name = HF_DATASET_ID if spec == "dailydialog" else spec.removeprefix("hf:")
    return read_huggingface(
        name, split or "train", limit, limits=limits, chat=chat if fmt == "chat" else None
    )


def _coherent(
    local: Path, spec: str, fmt: str, split: str | None, limits: DialogLimits, config: CoherentConfig
) -> Iterator[Dialog | DialogError]:
    """A coherent multi-session source (synth.dialogs.sources.coherent), one Dialog per item."""
    if fmt == "locomo":
        return read_locomo(local, limits, config.session_gap_sec)
    raise ConfigError("format", f"{fmt} is not supported yet", spec)
