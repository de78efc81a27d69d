"""Dialog sources. Each yields `Dialog` or `DialogError` lazily, so a bad record never stops the
iteration and a million dialogs are never held in memory."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...domain import Dialog
from ...errors import ConfigError, DialogError, SynthError
from ..build import DEFAULT_LIMITS, DialogLimits
from .chat import ChatFields, jsonl_is_chat, read_chat_jsonl
from .chronicles import chronicles_rows, looks_like_chronicles, read_chronicles
from .coherent import COHERENT_FORMATS, CoherentConfig
from .dailydialog import HF_DATASET_ID, _load_streaming, read_dailydialog_text, read_huggingface
from .json_items import json_records
from .jsonl import read_jsonl
from .locomo import looks_like_locomo, read_locomo
from .longmemeval import HUB_SPLIT, longmemeval_rows, looks_like_longmemeval, read_longmemeval
from .msc import looks_like_msc, looks_like_msc_row, msc_rows, read_msc

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
    """The format of what the user typed, from a cheap look at it: a file's suffix and first
    record, a parquet file's columns (for the coherent layouts: LoCoMo, MSC, Conversation
    Chronicles, LongMemEval). A hub name is "hf": its layout cannot be seen from here, so a
    coherent dataset on the hub needs --format."""
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
    if path.is_dir() and not any(path.glob("*.parquet")) and any(path.glob("*.json")):
        return _json_layout(min(path.glob("*.json")))  # a folder of REALTALK (LoCoMo) files
    if path.is_dir() or path.suffix == ".parquet":
        return _parquet_layout(path) or "hf"
    if path.suffix == ".json":
        return _json_layout(path)
    if path.suffix == ".txt":  # DailyDialog's text, or ParlAI's MSC session files (JSON Lines)
        return _jsonl_layout(path) or "dailydialog-txt"
    return _jsonl_layout(path) or "jsonl"


def _record_layout(record: Any) -> str | None:
    """The coherent layout one record is in, or None."""
    if looks_like_locomo(record):
        return "locomo"
    if looks_like_longmemeval(record):
        return "longmemeval"
    if looks_like_chronicles(record):
        return "chronicles"
    if looks_like_msc(record) or looks_like_msc_row(record):
        return "msc"
    return None


def _first_record(path: Path) -> Any:
    """A local file's first record (streamed: a big JSON array is not read whole), or None."""
    for _index, _line, record in json_records(path):
        return record
    return None


def _json_layout(path: Path) -> str:
    """The coherent layout of a .json file, by its first record: a JSON array or object (LoCoMo,
    REALTALK, LongMemEval) or JSON Lines (Conversation Chronicles' release, MSC)."""
    record = _first_record(path)
    if isinstance(record, DialogError):
        raise ConfigError("dialogs", f"cannot read as JSON: {record}", str(path))
    layout = _record_layout(record)
    if layout is not None:
        return layout
    raise ConfigError(
        "dialogs",
        "a .json file is read as LoCoMo, REALTALK, LongMemEval, MSC or Conversation Chronicles, "
        "and this one is none of them (give --format, or JSONL for one dialog a line)",
        str(path),
    )


def _jsonl_layout(path: Path) -> str | None:
    """The coherent layout of a JSON Lines file by its first line (MSC, Chronicles, LongMemEval),
    or None. Only a file that starts with "{" is looked into (not DailyDialog's text)."""
    with open(path, "rb") as fh:
        head = fh.read(64).removeprefix(b"\xef\xbb\xbf").lstrip()
    if not head.startswith(b"{"):
        return None
    layout = _record_layout(_first_record(path))
    return layout if layout != "locomo" else None  # LoCoMo is a JSON file, not JSON Lines


def _parquet_layout(path: Path) -> str | None:
    """The coherent layout a parquet file's (or a folder's first parquet file's) columns show,
    from its footer alone; None when it shows none or cannot be read (the hub reader says why)."""
    files = [path] if path.is_file() else sorted(path.glob("**/*.parquet"))[:1]
    if not files:
        return None
    try:
        import pyarrow.parquet as pq

        names = set(pq.read_schema(files[0]).names)
    except Exception:  # not installed, or not parquet: the reader reports it
        return None
    if {"dialog", "previous_dialogs"} <= names:
        return "msc"
    layout = _record_layout(dict.fromkeys(names))
    return layout if layout != "locomo" else None  # LoCoMo is read from its JSON file only


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
    """A coherent multi-session source (synth.dialogs.sources.coherent), one Dialog per item: a
    local file, or rows from the hub ('hf:<id>'), a parquet file or a folder of them, read through
    `datasets` as read_huggingface reads them."""
    gap = config.session_gap_sec
    if fmt == "locomo":  # a file, or a folder of files (REALTALK: one conversation a file)
        paths = sorted(local.glob("*.json")) if local.is_dir() else [local]
        return itertools.chain.from_iterable(read_locomo(p, limits, gap) for p in paths)
    files = {"msc": read_msc, "chronicles": read_chronicles, "longmemeval": read_longmemeval}
    rows = {"msc": msc_rows, "chronicles": chronicles_rows, "longmemeval": longmemeval_rows}
    if fmt not in files:
        raise ConfigError("format", f"{fmt} is not supported yet", spec)
    if spec.startswith("hf:") or local.is_dir() or local.suffix == ".parquet":
        split = split or (HUB_SPLIT if fmt == "longmemeval" else "train")
        name = spec.removeprefix("hf:")
        return rows[fmt](_hub_rows(name, split), split, limits, gap)
    return files[fmt](local, limits, gap)


def _hub_rows(name_or_path: str, split: str) -> Iterator[Any]:
    """The rows of a hub dataset or local parquet, streamed (`datasets` imported only here)."""
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise SynthError("Hugging Face sources need `datasets`: pip install 'synth[hf]'") from exc
    yield from _load_streaming(datasets, name_or_path, split, None)
